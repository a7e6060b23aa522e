"""Scratch databases on the private MariaDB: migrated from nothing, for tests and benchmarks."""

import pymysql

from order_saga.db import Database
from order_saga.migrate import apply_migrations
from order_saga.settings import Settings


def _run(settings: Settings, statement: str) -> None:
    admin = pymysql.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.mysql_user,
        password=settings.mysql_password,
        autocommit=True,
    )
    try:
        with admin.cursor() as cursor:
            cursor.execute(statement)
    finally:
        admin.close()


def create_scratch_database(settings: Settings, name: str) -> Settings:
    """A fresh, migrated database `name` (dropped first if it exists); settings that point at it."""
    _run(settings, f"DROP DATABASE IF EXISTS `{name}`")
    _run(settings, f"CREATE DATABASE `{name}`")
    scratch = settings.model_copy(update={"mysql_database": name})
    apply_migrations(Database(scratch).credentials)
    return scratch


def drop_scratch_database(settings: Settings, name: str) -> None:
    _run(settings, f"DROP DATABASE IF EXISTS `{name}`")
