"""Integration tests use the project-private MariaDB and Redis, and moto for AWS APIs.

The servers are started when they are not running. Each test run gets a database of its own
(`orders_test_<pid>`), migrated from scratch and dropped at the end, and Redis database 15,
so the tests never touch the data of a running demo.
"""

import os
from collections.abc import Iterator

import pymysql
import pytest
import redis

from devstack import services
from devstack.envfile import load_env
from order_saga.db import Database
from order_saga.migrate import apply_migrations
from order_saga.settings import Settings

TABLES = ("saga_log", "inventory_reservations", "payments", "order_items", "orders", "inventory")


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    services.services_up()
    load_env()
    return Settings()


@pytest.fixture(scope="session")
def settings(base_settings: Settings) -> Iterator[Settings]:
    name = f"orders_test_{os.getpid()}"
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
    test_settings = base_settings.model_copy(
        update={"mysql_database": name, "redis_url": base_settings.redis_url.rsplit("/", 1)[0] + "/15"}
    )
    apply_migrations(Database(test_settings).credentials)
    yield test_settings
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """A database handle on empty tables."""
    db = Database(settings)
    with db.transaction() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in TABLES:
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
