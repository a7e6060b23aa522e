"""The edge through a real gRPC channel: a server on port 0 over the private MariaDB and Redis,
Step Functions from moto in-process (executions are recorded, not run), real RS256 tokens."""

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import grpc
import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from moto import mock_aws
from prometheus_client import CollectorRegistry

from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from grpc_edge.server import build_order_service, build_verifier, create_server
from grpc_edge.settings import EdgeSettings
from order_saga.db import Database
from order_saga.settings import Settings

ISSUER = "order-saga-test"
AUDIENCE = "orders-api-test"
ALL_SCOPES = ("orders:read", "orders:write")
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
ROLE = "arn:aws:iam::123456789012:role/order-saga-test"


@dataclass(frozen=True)
class SigningKey:
    private_pem: bytes
    public_file: Path


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_file = tmp_path_factory.mktemp("jwt") / "public.pem"
    public_file.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey(private_pem, public_file)


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


@pytest.fixture
def state_machines(monkeypatch: pytest.MonkeyPatch) -> Iterator[StateMachines]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # moto in-process answers, not a server
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        client = boto3.client("stepfunctions")
        arns = [
            client.create_state_machine(name=name, definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]
            for name in ("OrderSaga", "OrderCancellation")
        ]
        yield StateMachines(client, *arns)


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


@pytest.fixture
def edge_factory(
    settings: Settings,
    database: Database,
    redis_client: "redis.Redis",
    state_machines: StateMachines,
    signing_key: SigningKey,
) -> Iterator[EdgeFactory]:
    servers: list[tuple[grpc.Server, grpc.Channel]] = []

    def start(
        channel_factory: Callable[[int], grpc.Channel] | None = None,
        cache: "redis.Redis | None" = None,
        **overrides: Any,
    ) -> Edge:
        """An edge with these settings; `cache` replaces the test Redis (e.g. one that is down)."""
        cache = cache or redis_client
        edge_settings = make_edge_settings(
            settings, state_machines, signing_key, **({"grpc_max_workers": 8} | overrides)
        )
        registry = CollectorRegistry()
        server, port = create_server(
            edge_settings,
            orders=build_order_service(edge_settings, cache),
            cache=cache,
            verifier=build_verifier(edge_settings),
            registry=registry,
            address="127.0.0.1:0",
        )
        server.start()
        channel = channel_factory(port) if channel_factory else grpc.insecure_channel(f"127.0.0.1:{port}")
        servers.append((server, channel))
        return Edge(
            orders_pb2_grpc.OrderServiceStub(channel),
            channel,
            port,
            edge_settings,
            registry,
            signing_key,
            database,
            state_machines,
        )

    yield start
    for server, channel in servers:
        channel.close()
        server.stop(None).wait()


@pytest.fixture
def edge(edge_factory: EdgeFactory) -> Edge:
    return edge_factory()


@pytest.fixture
def catalog(database: Database) -> dict[str, tuple[int, Decimal]]:
    """Products in the inventory table: id → (stock, unit price in EUR)."""
    products = {"book": (50, Decimal("12.50")), "lamp": (5, Decimal("30.00")), "pen": (1000, Decimal("1.20"))}
    with database.transaction() as cursor:
        cursor.executemany(
            "INSERT INTO inventory (product_id, name, stock, reserved, unit_price, currency) "
            "VALUES (%s, %s, %s, 0, %s, 'EUR')",
            [(pid, pid.title(), stock, price) for pid, (stock, price) in products.items()],
        )
    return products


def dead_redis() -> "redis.Redis":
    """A Redis client of a port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)


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
