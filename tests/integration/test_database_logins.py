"""The logins of the deployment, on the local MariaDB: a password rotated under a warm client,
and the application user the migration function creates (DML on the schema only)."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
import pytest
from mypy_boto3_secretsmanager import SecretsManagerClient

from devstack import services
from order_saga.db import ER_SIGNAL_EXCEPTION, Credentials, Database
from order_saga.errors import ConfigurationError
from order_saga.migrate import APPLICATION_PRIVILEGES, ensure_application_user
from order_saga.settings import Settings

ER_TABLEACCESS_DENIED = 1142
SUFFIX = os.getpid()


@pytest.fixture
def root() -> services.MariaDB:
    return services.mariadb()


@contextmanager
def account(root: services.MariaDB, name: str, password: str, *grants: str) -> Iterator[str]:
    """A user of this run's own, with `grants` (`<privileges> ON <what>`), dropped at the end."""
    user = f"'{name}_{SUFFIX}'@'127.0.0.1'"
    statements = [f"CREATE USER {user} IDENTIFIED BY '{password}'", *(f"GRANT {g} TO {user}" for g in grants)]
    root.execute_as_root("; ".join(statements))
    yield user
    root.execute_as_root(f"DROP USER IF EXISTS {user}")


@pytest.fixture
def login(root: services.MariaDB, settings: Settings) -> Iterator[str]:
    """A user with the password `first`, who may read the test database."""
    with account(root, "rotated", "first", f"SELECT ON `{settings.mysql_database}`.*") as user:
        yield user


def user_of(account: str) -> str:
    return account.split("@", maxsplit=1)[0].strip("'")


def test_a_password_rotated_under_a_warm_client_is_read_again(
    settings: Settings, secretsmanager: SecretsManagerClient, root: services.MariaDB, login: str
) -> None:
    # Given a client that logged in with the secret's credentials, cached for an hour
    secret = {"username": user_of(login), "password": "first"}
    arn = secretsmanager.create_secret(Name="orders/app", SecretString=json.dumps(secret))["ARN"]
    db = Database(
        settings.model_copy(
            update={"mysql_secret_arn": arn, "mysql_user": "", "mysql_password": "", "secret_max_age": 3600}
        )
    )
    with db.transaction() as cursor:
        cursor.execute("SELECT 1 AS one")
    # When the rotation changes the password and the secret, and the connection is dropped
    root.execute_as_root(f"ALTER USER {login} IDENTIFIED BY 'second'")
    secretsmanager.put_secret_value(SecretId=arn, SecretString=json.dumps(secret | {"password": "second"}))
    db.close()
    # Then the next login, refused with the cached password, reads the secret again and succeeds
    with db.transaction() as cursor:
        cursor.execute("SELECT CURRENT_USER() AS user")
        row = cursor.fetchone()
    assert row is not None
    assert row["user"].startswith(user_of(login))
    assert db.credentials.password == "second"
    db.close()


def test_a_secret_that_is_still_wrong_after_reading_it_again_is_a_configuration_error(
    settings: Settings, secretsmanager: SecretsManagerClient, login: str
) -> None:
    secret = {"username": user_of(login), "password": "not-the-password"}
    arn = secretsmanager.create_secret(Name="orders/wrong", SecretString=json.dumps(secret))["ARN"]
    db = Database(
        settings.model_copy(update={"mysql_secret_arn": arn, "mysql_user": "", "mysql_password": ""})
    )
    with pytest.raises(ConfigurationError, match="rejected user"):
        db.connection()


@pytest.fixture
def admin(root: services.MariaDB, settings: Settings) -> Iterator[Credentials]:
    """A migrations login like RDS's master user: it may create users and grant on the schema."""
    with account(root, "admin", "admin-pw", "CREATE USER ON *.*") as user:
        root.execute_as_root(
            f"GRANT ALL PRIVILEGES ON `{settings.mysql_database}`.* TO {user} WITH GRANT OPTION"
        )
        yield Credentials(
            settings.mysql_host, settings.mysql_port, user_of(user), "admin-pw", settings.mysql_database
        )
    root.execute_as_root(f"DROP USER IF EXISTS 'app_{SUFFIX}'@'%'")


def connect_as(
    creds: Credentials, user: str, password: str
) -> "pymysql.connections.Connection[pymysql.cursors.Cursor]":
    return pymysql.connect(
        host=creds.host, port=creds.port, user=user, password=password, database=creds.database
    )


def test_the_application_user_may_only_read_and_write_rows(admin: Credentials) -> None:
    user = f"app_{SUFFIX}"
    # When the migration function makes sure the application user exists
    ensure_application_user(admin, user, "app-pw")
    # Then it reads and writes rows
    with connect_as(admin, user, "app-pw") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM orders")
        cursor.execute(
            "INSERT INTO inventory (product_id, stock, unit_price, currency) VALUES ('x-1', 1, 1, 'EUR')"
        )
        cursor.execute("DELETE FROM inventory WHERE product_id = 'x-1'")
        connection.rollback()
        # And runs the steps' stored procedures (this one refuses an order that does not exist)
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cursor.execute("CALL saga_reserve_stock('no-such-order')")
        assert refused.value.args == (
            ER_SIGNAL_EXCEPTION,
            "OrderNotFound: order no-such-order does not exist",
        )
        # And may change no table
        for statement in (
            "CREATE TABLE intruder (id INT)",
            "DROP TABLE orders",
            "ALTER TABLE orders ADD x INT",
        ):
            with pytest.raises(pymysql.err.OperationalError) as refused:
                cursor.execute(statement)
            assert refused.value.args[0] == ER_TABLEACCESS_DENIED, statement
        cursor.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cursor.fetchall())
    assert f"GRANT {APPLICATION_PRIVILEGES} ON" in grants


def test_an_existing_application_user_keeps_the_password_its_rotation_set(admin: Credentials) -> None:
    user = f"app_{SUFFIX}"
    ensure_application_user(admin, user, "rotated-pw")
    # When a later deployment runs the migration function again with another password
    ensure_application_user(admin, user, "initial-pw")
    # Then the user still logs in with the password it had
    with connect_as(admin, user, "rotated-pw") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
