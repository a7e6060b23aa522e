"""The whole local stack, started once for the e2e tier: MariaDB, Redis and moto with Step
Functions execution and the local Lambda invoker, wired to a database of the run's own
(`orders_e2e_<pid>`, Redis database 14). Tests start executions directly, as the edge does.

The moto server of this checkout is restarted for the run (its resources and executions live in
memory, so a fresh one is the only clean one) and stopped at the end.
"""

import os
from collections.abc import Iterator

import pymysql
import pytest

from devstack import faults
from devstack.aws import AwsStackSettings, aws_down, aws_up
from order_saga.db import Database
from order_saga.migrate import apply_migrations
from order_saga.settings import Settings
from tests.e2e.stack import LocalStack
from tests.integration.conftest import TABLES, base_settings

__all__ = ["base_settings"]  # the integration tier's fixture: starts MariaDB and Redis

# Compensations "retry long" (minutes in AWS); the run waits 1/20 of each Retry interval.
RETRY_TIME_SCALE = 0.05


@pytest.fixture(scope="session")
def e2e_settings(base_settings: Settings) -> Iterator[Settings]:
    name = f"orders_e2e_{os.getpid()}"
    admin = pymysql.connect(
        host=base_settings.mysql_host,
        port=base_settings.mysql_port,
        user=base_settings.mysql_user,
        password=base_settings.mysql_password,
        autocommit=True,
    )
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cursor.execute(f"CREATE DATABASE `{name}`")
    settings = base_settings.model_copy(
        update={"mysql_database": name, "redis_url": base_settings.redis_url.rsplit("/", 1)[0] + "/14"}
    )
    apply_migrations(Database(settings).credentials)
    yield settings
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture(scope="session")
def local_stack(e2e_settings: Settings) -> Iterator[LocalStack]:
    aws_settings = AwsStackSettings(retry_time_scale=RETRY_TIME_SCALE)
    aws_down(aws_settings)
    faults.clear_faults()
    aws_up(e2e_settings, aws_settings)
    stack = LocalStack(aws_settings, Database(e2e_settings), e2e_settings.redis_url)
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
