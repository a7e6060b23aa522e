"""The edge through a real gRPC channel: a server on port 0 over the private MariaDB and Redis,
Step Functions from moto in-process (executions are recorded, not run), real RS256 tokens."""

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import grpc
import pytest
import redis
from moto import mock_aws
from prometheus_client import CollectorRegistry

from devstack.gateway.process import PaymentGatewayServer
from devstack.issuer.keys import KeyRing
from devstack.issuer.server import serving_issuer
from devstack.issuer.tokens import LocalIssuer
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from grpc_edge.server import build_order_service, build_verifier, create_server
from order_saga.db import Database
from order_saga.settings import Settings
from tests.support.edge import (
    DEFINITION,
    ROLE,
    SHOP,
    Edge,
    EdgeFactory,
    StateMachines,
    make_edge_settings,
)
from tests.support.moto_env import use_in_process_moto


@pytest.fixture(scope="session")
def token_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIssuer]:
    """The run's token issuer: the local stack's, its JWKS served from a thread of the run."""
    with serving_issuer(KeyRing(tmp_path_factory.mktemp("issuer") / "keys")) as issuer:
        yield issuer


@pytest.fixture
def state_machines(monkeypatch: pytest.MonkeyPatch) -> Iterator[StateMachines]:
    use_in_process_moto(monkeypatch)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        client = boto3.client("stepfunctions")
        arns = [
            client.create_state_machine(name=name, definition=DEFINITION, roleArn=ROLE)["stateMachineArn"]
            for name in ("OrderSaga", "OrderCancellation")
        ]
        yield StateMachines(client, *arns)


@pytest.fixture
def edge_factory(
    settings: Settings,
    database: Database,
    redis_client: "redis.Redis",
    state_machines: StateMachines,
    token_issuer: LocalIssuer,
    payment_gateway_server: PaymentGatewayServer,
) -> Iterator[EdgeFactory]:
    servers: list[tuple[grpc.Server, grpc.Channel]] = []
    # The gateway the edge's reconciler refunds through, its key in a secret (moto's), as in AWS.
    secret = boto3.client("secretsmanager").create_secret(
        Name="payment-gateway", SecretString=payment_gateway_server.api_key
    )
    gateway = {"payment_gateway_url": payment_gateway_server.url, "payment_gateway_secret_arn": secret["ARN"]}

    def start(
        channel_factory: Callable[[int], grpc.Channel] | None = None,
        cache: "redis.Redis | None" = None,
        clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> Edge:
        """An edge with these settings; `cache` replaces the test Redis (e.g. one that is down),
        `clock` places each request in its rate-limit window."""
        cache = cache or redis_client
        edge_settings = make_edge_settings(
            settings, state_machines, token_issuer, **({"grpc_max_workers": 8} | gateway | overrides)
        )
        registry = CollectorRegistry()
        server, port = create_server(
            edge_settings,
            orders=build_order_service(edge_settings, cache),
            cache=cache,
            verifier=build_verifier(edge_settings),
            registry=registry,
            address="127.0.0.1:0",
            clock=clock,
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
            token_issuer,
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
def shop(database: Database) -> dict[str, tuple[int, Decimal]]:
    """The edge tests' products in the inventory table: id → (stock, unit price in EUR)."""
    products = SHOP
    with database.transaction() as cursor:
        cursor.executemany(
            "INSERT INTO inventory (product_id, name, stock, reserved, unit_price, currency) "
            "VALUES (%s, %s, %s, 0, %s, 'EUR')",
            [(pid, pid.title(), stock, price) for pid, (stock, price) in products.items()],
        )
    return products
