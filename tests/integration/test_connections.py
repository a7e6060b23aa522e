"""Connections to MySQL and Redis: reuse, reconnection, and clear errors for wrong settings."""

import json
import time

import pytest
import redis
from mypy_boto3_secretsmanager import SecretsManagerClient

from order_saga.cache import check_redis, create_redis
from order_saga.db import Database
from order_saga.errors import CacheUnavailable, ConfigurationError, DatabaseUnavailable
from order_saga.settings import Settings


def select_one(db: Database) -> int:
    with db.transaction() as cursor:
        cursor.execute("SELECT CONNECTION_ID() AS id")
        row = cursor.fetchone()
    assert row is not None
    return int(row["id"])


def test_the_connection_is_reused_across_calls(database: Database) -> None:
    assert select_one(database) == select_one(database)


def kill(settings: Settings, connection_id: int) -> None:
    killer = Database(settings)
    with killer.transaction() as cursor:
        cursor.execute(f"KILL {connection_id}")
    killer.close()


def test_an_idle_connection_is_checked_and_reopened(settings: Settings) -> None:
    # Given a connection that the server kills while it is idle (a proxy timeout, a failover)
    database = Database(settings, ping_after_idle=0)
    first = select_one(database)
    kill(settings, first)
    # When the next invocation uses the database, then it works on a new connection
    assert select_one(database) != first
    database.close()


def test_a_connection_lost_while_busy_fails_once_as_transient(settings: Settings) -> None:
    # Given a busy connection (no ping before each transaction) that the server kills
    database = Database(settings, ping_after_idle=3600)
    first = select_one(database)
    kill(settings, first)
    # When the next transaction runs, then it fails with the error the state machine retries
    with pytest.raises(DatabaseUnavailable):
        select_one(database)
    # And the retry connects afresh
    assert select_one(database) != first
    database.close()


def test_one_lost_connection_makes_the_other_handles_check_theirs(settings: Settings) -> None:
    # Given two busy handles of one process (an edge's worker threads), both connections killed
    # at once, as a restart or a failover kills them
    first, second = Database(settings, ping_after_idle=3600), Database(settings, ping_after_idle=3600)
    ids = select_one(first), select_one(second)
    for connection_id in ids:
        kill(settings, connection_id)
    # When the first fails on its lost connection
    with pytest.raises(DatabaseUnavailable):
        select_one(first)
    # Then the second checks its own before using it: it works at once, on a new connection
    assert select_one(second) not in ids
    first.close()
    second.close()


def test_a_failed_transaction_is_rolled_back(database: Database) -> None:
    with pytest.raises(RuntimeError), database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO inventory (product_id, stock, unit_price, currency) VALUES ('sku-9', 1, 1, 'EUR')"
        )
        raise RuntimeError("the step failed half-way")
    with database.transaction() as cursor:
        cursor.execute("SELECT COUNT(*) AS n FROM inventory")
        assert cursor.fetchone() == {"n": 0}


def test_a_wrong_password_names_the_setting(settings: Settings) -> None:
    wrong = Database(settings.model_copy(update={"mysql_password": "wrong"}))
    with pytest.raises(ConfigurationError, match="MYSQL_PASSWORD"):
        wrong.connection()


def test_an_unknown_database_names_the_setting(settings: Settings) -> None:
    wrong = Database(settings.model_copy(update={"mysql_database": "orders_nowhere"}))
    with pytest.raises(ConfigurationError, match="MYSQL_DATABASE"):
        wrong.connection()


def test_an_unreachable_server_is_transient(settings: Settings) -> None:
    wrong = Database(settings.model_copy(update={"mysql_port": 1, "mysql_connect_timeout": 1}))
    with pytest.raises(DatabaseUnavailable, match="MYSQL_HOST/MYSQL_PORT"):
        wrong.connection()


def test_redis_round_trip(settings: Settings, redis_client: "redis.Redis") -> None:
    client = create_redis(settings)
    check_redis(client, settings)
    client.set("order-saga:test", "42")
    assert redis_client.get("order-saga:test") == "42"


def test_an_unreachable_redis_names_the_setting(settings: Settings) -> None:
    wrong = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0", "redis_timeout": 0.5})
    with pytest.raises(CacheUnavailable, match=r"REDIS_URL=redis://127\.0\.0\.1:1/0"):
        check_redis(create_redis(wrong), wrong)


def test_mysql_tls_refuses_a_server_without_tls_instead_of_talking_in_plaintext(settings: Settings) -> None:
    # Given the local MariaDB, which offers no TLS (a plaintext login works)
    assert select_one(Database(settings)) > 0
    # When MYSQL_TLS is on, Then the connection is refused with the setting named, never made in clear
    with pytest.raises(ConfigurationError, match="MYSQL_TLS"):
        Database(settings.model_copy(update={"mysql_tls": True})).connection()


def test_credentials_come_from_secrets_manager(
    settings: Settings, secretsmanager: SecretsManagerClient
) -> None:
    # Given the real credentials only in a secret (RDS format), and none in the settings
    secret = {
        "username": settings.mysql_user,
        "password": settings.mysql_password,
        "dbname": settings.mysql_database,
        "port": settings.mysql_port,
        "engine": "mysql",
    }
    arn = secretsmanager.create_secret(Name="orders/db", SecretString=json.dumps(secret))["ARN"]
    from_secret = settings.model_copy(
        update={"mysql_secret_arn": arn, "mysql_user": "", "mysql_password": ""}
    )
    # When a function connects
    db = Database(from_secret)
    # Then it logs in with the secret's credentials
    assert select_one(db) > 0
    db.close()


def test_a_missing_secret_names_the_setting(settings: Settings, secretsmanager: SecretsManagerClient) -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders/missing-AbCdEf"
    with pytest.raises(ConfigurationError, match="MYSQL_SECRET_ARN"):
        Database(settings.model_copy(update={"mysql_secret_arn": arn})).connection()


def test_a_secret_without_a_password_is_a_clear_error(
    settings: Settings, secretsmanager: SecretsManagerClient
) -> None:
    arn = secretsmanager.create_secret(Name="orders/bad", SecretString=json.dumps({"username": "x"}))["ARN"]
    with pytest.raises(ConfigurationError, match="password"):
        Database(settings.model_copy(update={"mysql_secret_arn": arn})).connection()


def test_the_redis_auth_token_comes_from_secrets_manager(
    settings: Settings, secretsmanager: SecretsManagerClient
) -> None:
    arn = secretsmanager.create_secret(Name="orders/redis", SecretString="token-123")["ARN"]
    client = create_redis(settings.model_copy(update={"redis_auth_secret_arn": arn}))
    assert client.connection_pool.connection_kwargs["credential_provider"].get_credentials() == ("token-123",)


def rotated_secret(settings: Settings, secretsmanager: SecretsManagerClient, max_age: int) -> Settings:
    """Settings reading the credentials from a secret, read once (cached for max_age), then rotated."""
    secret = {
        "username": settings.mysql_user,
        "password": settings.mysql_password,
        "port": settings.mysql_port,
    }
    arn = secretsmanager.create_secret(Name="orders/rotating", SecretString=json.dumps(secret))["ARN"]
    from_secret = settings.model_copy(update={"mysql_secret_arn": arn, "secret_max_age": max_age})
    assert Database(from_secret).credentials.password == settings.mysql_password
    secretsmanager.put_secret_value(SecretId=arn, SecretString=json.dumps(secret | {"password": "rotated"}))
    return from_secret


def test_a_secret_is_cached_for_its_max_age(settings: Settings, secretsmanager: SecretsManagerClient) -> None:
    from_secret = rotated_secret(settings, secretsmanager, max_age=3600)
    # Within its max age the cached value answers (no Secrets Manager call per connection)
    assert Database(from_secret).credentials.password == settings.mysql_password


def test_a_secret_older_than_its_max_age_is_read_again(
    settings: Settings, secretsmanager: SecretsManagerClient
) -> None:
    from_secret = rotated_secret(settings, secretsmanager, max_age=1)
    # Once the cached value is older than its max age, the rotated one is read
    deadline = time.monotonic() + 60
    while Database(from_secret).credentials.password != "rotated":
        assert time.monotonic() < deadline, "the rotated secret was never read again"
        time.sleep(0.2)
