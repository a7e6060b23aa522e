"""The whole local stack, started once for the e2e tier: MariaDB, Redis and moto with Step
Functions execution and the local Lambda invoker, wired to a database of the run's own
(`orders_e2e_<pid>`, Redis database 14). Tests start executions directly, as the edge does.

The moto server of this checkout is restarted for the run (its resources and executions live in
memory, so a fresh one is the only clean one) and stopped at the end.
"""

import os
from collections.abc import Iterator

import pytest

from devstack import faults
from devstack.aws import AwsStackSettings, aws_down, aws_up
from order_saga.settings import Settings
from tests.e2e.stack import LocalStack
from tests.integration.conftest import TABLES, base_settings, private_database

__all__ = ["base_settings"]  # the integration tier's fixture: starts MariaDB and Redis

# Compensations "retry long" (minutes in AWS); the run waits 1/20 of each Retry interval.
RETRY_TIME_SCALE = 0.05


@pytest.fixture(scope="session")
def e2e_settings(base_settings: Settings) -> Iterator[Settings]:
    with private_database(base_settings, f"orders_e2e_{os.getpid()}", redis_db=14) as settings:
        yield settings


@pytest.fixture(scope="session")
def local_stack(e2e_settings: Settings) -> Iterator[LocalStack]:
    aws_settings = AwsStackSettings(retry_time_scale=RETRY_TIME_SCALE)
    aws_down(aws_settings)
    faults.clear_faults()
    aws_up(e2e_settings, aws_settings)
    stack = LocalStack(aws_settings, e2e_settings)
    yield stack
    faults.clear_faults()
    stack.database.close()
    aws_down(aws_settings)


@pytest.fixture
def stack(local_stack: LocalStack) -> Iterator[LocalStack]:
    """The stack with empty tables, a fresh catalog and no faults."""
    with local_stack.database.transaction() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in (*TABLES, "notifications"):
            cursor.execute(f"TRUNCATE TABLE {table}")
        cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
    local_stack.stock_catalog()
    faults.clear_faults()
    yield local_stack
    faults.clear_faults()
