"""An edge of the tests' own through a real gRPC channel: its settings, a client of it, tokens from
a test issuer, moto's state machines, and what its error details say."""

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import jwt
import redis
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry

from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from grpc_edge.settings import EdgeSettings
from order_saga.db import Database
from order_saga.settings import Settings
from tests.support.processes import free_port

ISSUER = "order-saga-test"
AUDIENCE = "orders-api-test"
ALL_SCOPES = ("orders:read", "orders:write")
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
ROLE = "arn:aws:iam::123456789012:role/order-saga-test"
# The edge tests' shop: product id -> (stock, unit price in EUR).
SHOP = {"book": (50, Decimal("12.50")), "lamp": (5, Decimal("30.00")), "pen": (1000, Decimal("1.20"))}


@dataclass(frozen=True)
class SigningKey:
    private_pem: bytes
    public_file: Path


def make_token(key: SigningKey, sub: str, scopes: tuple[str, ...] = ALL_SCOPES, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + 300,
        "scope": " ".join(scopes),
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key.private_pem, algorithm="RS256")


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
    key: SigningKey
    database: Database
    machines: StateMachines

    def auth(self, sub: str = "alice", scopes: tuple[str, ...] = ALL_SCOPES) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {make_token(self.key, sub, scopes)}"),)

    def create(self, items: list[tuple[str, int]], sub: str = "alice", **fields: Any) -> pb.Order:
        request = pb.CreateOrderRequest(
            idempotency_key=fields.pop("idempotency_key", str(uuid.uuid4())),
            items=[pb.OrderItem(product_id=p, quantity=q) for p, q in items],
            payment_token=fields.pop("payment_token", "tok_visa"),
            email=fields.pop("email", "alice@example.com"),
        )
        return self.stub.CreateOrder(request, metadata=self.auth(sub), timeout=30).order

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self.database.transaction() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])


EdgeFactory = Callable[..., Edge]


def make_edge_settings(
    settings: Settings, machines: StateMachines, key: SigningKey, **overrides: Any
) -> EdgeSettings:
    """The test database and Redis, moto's state machines, and the test issuer's key."""
    return EdgeSettings(
        **settings.model_dump()
        | {
            "order_saga_state_machine_arn": machines.saga_arn,
            "order_cancellation_state_machine_arn": machines.cancellation_arn,
            "jwt_issuer": ISSUER,
            "jwt_audience": AUDIENCE,
            "jwt_public_key_file": key.public_file,
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
