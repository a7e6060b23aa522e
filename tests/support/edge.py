"""An edge of the tests' own through a real gRPC channel: its settings, a client of it, tokens from
the tests' own token issuer (the local issuer, serving its JWKS from a thread), moto's state
machines, and what its error details say."""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import grpc
import redis
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry

from devstack.issuer.tokens import CUSTOMER_APP_CLIENT, LocalIssuer, cognito_scope
from grpc_edge.auth import CUSTOMER_METADATA
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from grpc_edge.settings import EdgeSettings
from order_saga.db import Database
from order_saga.settings import Settings
from tests.support.processes import free_port

ALL_SCOPES = ("orders:read", "orders:write")
SERVICE_SCOPES = (*ALL_SCOPES, "orders:act-as")
Metadata = tuple[tuple[str, str], ...]
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
ROLE = "arn:aws:iam::123456789012:role/order-saga-test"
# The edge tests' shop: product id -> (stock, unit price in EUR).
SHOP = {"book": (50, Decimal("12.50")), "lamp": (5, Decimal("30.00")), "pen": (1000, Decimal("1.20"))}


def make_token(issuer: LocalIssuer, sub: str, scopes: tuple[str, ...] = ALL_SCOPES, **overrides: Any) -> str:
    """A customer's access token, with `overrides` for its claims (None leaves a claim out)."""
    claims = {
        "sub": sub,
        "client_id": CUSTOMER_APP_CLIENT,
        "token_use": "access",
        "scope": " ".join(map(cognito_scope, scopes)),
    }
    return issuer.sign(claims | overrides, ttl_seconds=300)


@dataclass(frozen=True)
class StateMachines:
    client: Any
    saga_arn: str
    cancellation_arn: str

    def executions(self, arn: str) -> list[dict[str, Any]]:
        return list(self.client.list_executions(stateMachineArn=arn)["executions"])


@dataclass
class Edge:
    """A running edge and a client of it."""

    stub: orders_pb2_grpc.OrderServiceStub
    channel: grpc.Channel
    port: int
    settings: EdgeSettings
    registry: CollectorRegistry
    issuer: LocalIssuer
    database: Database
    machines: StateMachines

    def auth(self, sub: str = "alice", scopes: tuple[str, ...] = ALL_SCOPES) -> tuple[tuple[str, str]]:
        """A customer's own call."""
        return (("authorization", f"Bearer {make_token(self.issuer, sub, scopes)}"),)

    def service_auth(
        self, client: str, customer: str | None, scopes: tuple[str, ...] = SERVICE_SCOPES
    ) -> Metadata:
        """A service's call, for `customer` (None: naming nobody)."""
        bearer = ("authorization", f"Bearer {self.issuer.service_token(client, scopes, ttl_seconds=300)}")
        return (bearer,) if customer is None else (bearer, (CUSTOMER_METADATA, customer))

    def create(self, items: list[tuple[str, int]], sub: str = "alice", **fields: Any) -> pb.Order:
        """CreateOrder as the customer `sub`, or with the `metadata` given (a service's call)."""
        metadata = fields.pop("metadata", None) or self.auth(sub)
        request = pb.CreateOrderRequest(
            idempotency_key=fields.pop("idempotency_key", str(uuid.uuid4())),
            items=[pb.OrderItem(product_id=p, quantity=q) for p, q in items],
            payment_token=fields.pop("payment_token", "tok_visa"),
            email=fields.pop("email", "alice@example.com"),
        )
        return self.stub.CreateOrder(request, metadata=metadata, timeout=30).order

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self.database.transaction() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])


EdgeFactory = Callable[..., Edge]


def make_edge_settings(
    settings: Settings, machines: StateMachines, issuer: LocalIssuer, **overrides: Any
) -> EdgeSettings:
    """The test database and Redis, moto's state machines, and the test issuer."""
    return EdgeSettings(
        **settings.model_dump()
        | {
            "order_saga_state_machine_arn": machines.saga_arn,
            "order_cancellation_state_machine_arn": machines.cancellation_arn,
            "jwt_issuer": issuer.url,
            "jwt_jwks_url": issuer.jwks_url,
        }
        | overrides
    )


def insert_orphan(database: Database, age_seconds: int) -> str:
    """What an edge that died between the insert and StartExecution leaves behind."""
    order_id = str(uuid.uuid4())
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency, "
            "payment_token, created_at) VALUES (%s, 'alice', %s, %s, 1.20, 'EUR', 'tok_visa', "
            "CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND)",
            (order_id, order_id, "0" * 64, age_seconds),
        )
        cursor.execute("INSERT INTO order_items VALUES (%s, 'pen', 1, 1.20)", (order_id,))
    return order_id


def dead_redis() -> "redis.Redis":
    """A Redis client of a port where nothing listens (held by this run, so nothing will)."""
    return redis.Redis(port=free_port(), socket_timeout=1, socket_connect_timeout=1)


def status_of(error: grpc.RpcError) -> grpc.StatusCode:
    return error.code()


def field_violations(error: grpc.RpcError) -> list[str]:
    """The fields named by the google.rpc.BadRequest detail of an error."""
    status = rpc_status.from_call(error)
    fields: list[str] = []
    for detail in status.details if status else []:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields.extend(v.field for v in bad_request.field_violations)
    return fields
