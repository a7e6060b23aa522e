"""Integration tests use the project-private MariaDB and Redis, a payment gateway server, and
moto for AWS APIs.

The servers are started when they are not running. Each test run gets a database of its own
(`orders_test_<pid>`), migrated from scratch and dropped at the end, Redis database 15, and a
gateway server on a free port with its store in a temporary folder, so the tests never touch the
data of a running demo.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
import redis
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from mypy_boto3_secretsmanager import SecretsManagerClient

from devstack import services
from devstack.envfile import load_env
from devstack.gateway.process import PaymentGatewayServer
from devstack.scratch import create_scratch_database, drop_scratch_database
from order_saga import cache, clients, db, lambda_step, payment_gateway
from order_saga import settings as settings_module
from order_saga.db import Database
from order_saga.payment_gateway import HttpGateway
from order_saga.settings import Settings
from tests.support.data import CATALOG, TABLES, OrderFactory
from tests.support.gateway import adapter, gateway_server


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    services.services_up()
    load_env()
    # AWS is mocked in-process here (moto's mock_aws); the local stack's endpoint, which
    # `order-saga aws up` writes to .devstack/env, would send those calls to the running server.
    os.environ.pop("AWS_ENDPOINT_URL", None)
    return Settings()


@contextmanager
def private_database(base_settings: Settings, name: str, redis_db: int) -> Iterator[Settings]:
    """Settings for a database of this run's own, migrated from scratch and dropped at the end."""
    scratch = create_scratch_database(base_settings, name)
    yield scratch.model_copy(update={"redis_url": base_settings.redis_url.rsplit("/", 1)[0] + f"/{redis_db}"})
    drop_scratch_database(base_settings, name)


@pytest.fixture(scope="session")
def settings(base_settings: Settings) -> Iterator[Settings]:
    with private_database(base_settings, f"orders_test_{os.getpid()}", redis_db=15) as test_settings:
        yield test_settings


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """A database handle on empty tables."""
    db = Database(settings)
    with db.transaction() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in (*TABLES, "notifications"):
            cursor.execute(f"TRUNCATE TABLE {table}")
        cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
    yield db
    db.close()


@pytest.fixture
def redis_client(settings: Settings) -> Iterator["redis.Redis"]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def catalog(database: Database) -> dict[str, tuple[str, int]]:
    """Three products: (unit price, stock)."""
    with database.transaction() as cursor:
        cursor.executemany(
            "INSERT INTO inventory (product_id, name, stock, unit_price, currency)"
            " VALUES (%s, %s, %s, %s, 'EUR')",
            [(product, product.upper(), stock, price) for product, (price, stock) in CATALOG.items()],
        )
    return CATALOG


@pytest.fixture
def new_order(database: Database, catalog: dict[str, tuple[str, int]]) -> OrderFactory:
    return OrderFactory(database)


@pytest.fixture(scope="session")
def payment_gateway_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentGatewayServer]:
    """The run's own gateway server (the local stack's, in a process of its own)."""
    with gateway_server(tmp_path_factory.mktemp("state")) as server:
        yield server


@pytest.fixture
def gateway(payment_gateway_server: PaymentGatewayServer) -> Iterator[HttpGateway]:
    """The functions' adapter on the run's gateway server, with no fault planned before or after."""
    payment_gateway_server.clear_faults()
    yield adapter(payment_gateway_server)
    payment_gateway_server.clear_faults()


@pytest.fixture
def lambda_env(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    secretsmanager: SecretsManagerClient,
    payment_gateway_server: PaymentGatewayServer,
) -> Iterator[Settings]:
    """The process environment a deployed function would have, pointing at the test database and
    the gateway server, whose key it reads from its secret (moto's)."""
    secret = secretsmanager.create_secret(Name="payment-gateway", SecretString=payment_gateway_server.api_key)
    settings = settings.model_copy(
        update={
            "payment_gateway_url": payment_gateway_server.url,
            "payment_gateway_secret_arn": secret["ARN"],
        }
    )
    values = {name.upper(): str(value) for name, value in settings.model_dump().items() if value is not None}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "OrderSaga")
    caches = (
        settings_module.get_settings,
        db.get_database,
        cache.get_redis,
        payment_gateway.get_gateway,
        lambda_step._step_results,
        clients.get_ses,
    )
    for cached in caches:
        cached.cache_clear()
    yield settings
    for cached in caches:
        cached.cache_clear()


@pytest.fixture
def secretsmanager(monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretsManagerClient]:
    """moto's Secrets Manager in-process, with Powertools' secret cache empty before and after."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")
    parameters.clear_caches()  # type: ignore[no-untyped-call]
