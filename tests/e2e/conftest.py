"""The whole local stack, started once for the e2e tier in a state folder and on ports of its
own: MariaDB, Redis, moto with Step Functions execution and the local Lambda invoker, and the
gRPC edge, exactly as `order-saga up` starts them. Tests drive it as clients do, through the edge.

A stack this checkout already runs (`make demo`, then `make test`) is left alone: nothing here
reads or writes its `.devstack/` folder or its ports.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from devstack.services import MariaDB, Redis
from tests.support.data import TABLES
from tests.support.processes import cli
from tests.support.stack import (
    RETRY_TIME_SCALE,
    WAIT_SECONDS,
    Customer,
    LocalStack,
    stack_environment,
    wait_until,
)


@pytest.fixture(scope="package")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder: Path = tmp_path_factory.mktemp("e2e") / "stack"
    # The edge's key cache is short here, so a withdrawn key's expiry is seen within seconds.
    return stack_environment(
        folder, DEVSTACK_RETRY_TIME_SCALE=str(RETRY_TIME_SCALE), JWT_JWKS_CACHE_SECONDS="2"
    )


# Package scope: the stack stops as soon as the e2e tier is done.
@pytest.fixture(scope="package")
def local_stack(stack_env: dict[str, str]) -> Iterator[LocalStack]:
    up = cli("up", env=stack_env, timeout=WAIT_SECONDS)
    try:
        assert up.returncode == 0, f"order-saga up failed:\n{up.stdout}{up.stderr}"
        stack = LocalStack.running(stack_env)
        yield stack
        stack.channel.close()
        stack.database.close()
    finally:
        down = cli("down", env=stack_env, timeout=WAIT_SECONDS)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture
def stack(local_stack: LocalStack) -> Iterator[LocalStack]:
    """The stack with empty tables, a fresh catalog, an empty compensation DLQ and no faults."""
    with local_stack.database.transaction() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in (*TABLES, "notifications"):
            cursor.execute(f"TRUNCATE TABLE {table}")
        cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
    local_stack.stock_catalog()
    local_stack.clear_faults()
    local_stack.gateway_server.clear_faults()
    local_stack.purge_dlq()
    yield local_stack
    local_stack.clear_faults()
    local_stack.gateway_server.clear_faults()


@pytest.fixture
def customer(stack: LocalStack) -> Customer:
    """A client of the stack's edge (user-1), on the fresh stack of `stack`."""
    return stack.customer()


@pytest.fixture
def database_server(stack: LocalStack) -> Iterator[MariaDB]:
    """The stack's MariaDB, which a test may stop; always running again afterwards."""
    server = MariaDB(int(stack.env["DEVSTACK_MYSQL_PORT"]), stack.state_dir)
    yield server
    server.start()
    stack.database.close()  # its connection died with the server
    customer = stack.customer()
    wait_until(lambda: edge_reads_orders(customer), "the edge to read orders from the restarted database")


@pytest.fixture
def redis_server(stack: LocalStack) -> Iterator[Redis]:
    """The stack's Redis, which a test may stop; always running again afterwards."""
    server = Redis(int(stack.env["DEVSTACK_REDIS_PORT"]), stack.state_dir)
    yield server
    server.start()


def edge_reads_orders(customer: Customer) -> bool:
    """Whether the edge answers GetOrder from the database (NOT_FOUND for an order of nobody's)."""
    try:
        customer.get(str(uuid.uuid4()))
    except grpc.RpcError as exc:
        return exc.code() is not grpc.StatusCode.UNAVAILABLE
    return True
