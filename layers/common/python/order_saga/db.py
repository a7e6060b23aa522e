"""MySQL access: credentials (Secrets Manager or settings), one reused connection, transactions.

A Lambda container keeps its connection across warm invocations; a connection the server or
RDS Proxy dropped is re-opened on the next use. A login refused with credentials from a secret
is tried once more with the secret read afresh, since a rotation may have changed it. Errors
leave this module typed: a refused login or unknown database is a ConfigurationError naming the
setting to fix, a lost or unreachable server is DatabaseUnavailable (transient: the state machine
retries it).
"""

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pymysql
from pymysql.cursors import DictCursor

from .errors import ConfigurationError, DatabaseUnavailable
from .secrets import read_secret
from .settings import Settings, get_settings

Cursor = DictCursor

# MySQL client and server error codes (identical in MariaDB).
ER_ACCESS_DENIED = 1045
ER_BAD_DB = 1049
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
ER_SIGNAL_EXCEPTION = 1644  # a stored procedure's SIGNAL SQLSTATE '45000'
CR_CONNECTION_ERROR = 2002
CR_CONN_HOST_ERROR = 2003
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013
CR_SSL_CONNECTION_ERROR = 2026
LOST_CONNECTION_CODES = {CR_SERVER_GONE, CR_SERVER_LOST}
TRANSIENT_CODES = {
    ER_LOCK_WAIT_TIMEOUT,
    ER_LOCK_DEADLOCK,
    CR_CONNECTION_ERROR,
    CR_CONN_HOST_ERROR,
    CR_SERVER_GONE,
    CR_SERVER_LOST,
}


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    user: str
    password: str
    database: str


def load_credentials(settings: Settings, *, fresh: bool = False) -> Credentials:
    """From the secret when MYSQL_SECRET_ARN is set (RDS secret JSON; `fresh`: not from the cache),
    else from plain settings."""
    if not settings.mysql_secret_arn:
        return Credentials(
            settings.mysql_host,
            settings.mysql_port,
            settings.mysql_user,
            settings.mysql_password,
            settings.mysql_database,
        )
    secret = read_secret(
        settings.mysql_secret_arn,
        setting="MYSQL_SECRET_ARN",
        max_age=settings.secret_max_age,
        as_json=True,
        fresh=fresh,
    )
    try:
        return Credentials(
            host=settings.mysql_host,  # the proxy endpoint, not the instance the secret names
            port=int(secret.get("port", settings.mysql_port)),
            user=secret["username"],
            password=secret["password"],
            database=secret.get("dbname", settings.mysql_database),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"the secret named by MYSQL_SECRET_ARN lacks a valid field: {exc} "
            "(expected the RDS JSON format with username and password)"
        ) from exc


def translate_error(exc: pymysql.err.MySQLError, creds: Credentials) -> Exception:
    """A typed error naming what to check, for a PyMySQL error that is not the caller's to handle."""
    code = exc.args[0] if exc.args else None
    where = f"{creds.host}:{creds.port}"
    if code == ER_ACCESS_DENIED:
        return ConfigurationError(
            f"MySQL at {where} rejected user {creds.user!r}: check MYSQL_USER and MYSQL_PASSWORD "
            "(or the secret named by MYSQL_SECRET_ARN)"
        )
    if code == ER_BAD_DB:
        return ConfigurationError(
            f"MySQL at {where} has no database {creds.database!r}: check MYSQL_DATABASE"
        )
    if code == CR_SSL_CONNECTION_ERROR:
        return ConfigurationError(
            f"MySQL at {where}: no verified TLS connection ({exc.args[-1]}): MYSQL_TLS needs a server "
            "that offers TLS with a certificate this machine trusts"
        )
    if code in TRANSIENT_CODES:
        return DatabaseUnavailable(f"MySQL at {where} (MYSQL_HOST/MYSQL_PORT): {exc.args[-1]}")
    return exc  # not ours to rename: integrity errors and the like are the caller's to interpret


class _Losses:
    """How many lost connections this process has seen. A restart or a failover drops every
    connection at once, so one loss makes every connection opened before it suspect."""

    seen = 0


class Database:
    """One connection, opened lazily, re-opened when lost.

    It is checked with a ping only after it sat idle for `ping_after_idle` seconds (when a proxy or
    server timeout may have closed it), or when another handle of the process lost its connection
    since (an outage closes them all); a busy connection saves that round trip on every
    transaction. A connection lost in between fails its transaction with DatabaseUnavailable,
    which the state machine retries, and is dropped so the retry connects afresh.
    """

    def __init__(self, settings: Settings, *, ping_after_idle: float = 10.0) -> None:
        self._settings = settings
        self._ping_after_idle = ping_after_idle
        self._connection: pymysql.connections.Connection[Any] | None = None
        self._credentials: Credentials | None = None
        self._last_used = 0.0
        self._losses_seen = _Losses.seen

    @property
    def credentials(self) -> Credentials:
        if self._credentials is None:
            self._credentials = load_credentials(self._settings)
        return self._credentials

    def connect(self) -> "pymysql.connections.Connection[Any]":
        try:
            return self._open(self.credentials)
        except pymysql.err.MySQLError as exc:
            if not (exc.args and exc.args[0] == ER_ACCESS_DENIED and self._settings.mysql_secret_arn):
                raise translate_error(exc, self.credentials) from exc
        # Warm containers outlive a password rotation: read the secret again, once, bypassing the
        # cache; a login refused with what it says now is a real misconfiguration.
        self._credentials = load_credentials(self._settings, fresh=True)
        try:
            return self._open(self._credentials)
        except pymysql.err.MySQLError as exc:
            raise translate_error(exc, self._credentials) from exc

    def _open(self, creds: Credentials) -> "pymysql.connections.Connection[Any]":
        return pymysql.connect(
            host=creds.host,
            port=creds.port,
            user=creds.user,
            password=creds.password,
            database=creds.database,
            charset="utf8mb4",
            autocommit=False,
            cursorclass=DictCursor,
            connect_timeout=self._settings.mysql_connect_timeout,
            ssl=ssl.create_default_context() if self._settings.mysql_tls else None,
        )

    def connection(self) -> "pymysql.connections.Connection[Any]":
        suspect = time.monotonic() - self._last_used >= self._ping_after_idle or (
            self._losses_seen < _Losses.seen
        )
        if self._connection is not None and suspect and not self._is_alive(self._connection):
            _Losses.seen += 1
            self._connection = None
        if self._connection is None:
            self._connection = self.connect()
        self._losses_seen = _Losses.seen
        return self._connection

    @staticmethod
    def _is_alive(connection: "pymysql.connections.Connection[Any]") -> bool:
        try:
            connection.ping(reconnect=False)
        except pymysql.err.Error:
            return False
        return True

    @contextmanager
    def transaction(self) -> Iterator[DictCursor]:
        """A cursor inside one transaction: committed when the block ends, rolled back if it raises."""
        connection = self.connection()
        try:
            with connection.cursor() as cursor:
                yield cursor
            connection.commit()
            self._last_used = time.monotonic()
        except pymysql.err.MySQLError as exc:
            self._rollback_quietly(connection)
            if exc.args and exc.args[0] in LOST_CONNECTION_CODES:
                _Losses.seen += 1
                self._connection = None
            translated = translate_error(exc, self.credentials)
            if translated is exc:
                raise
            raise translated from exc
        except BaseException:
            self._rollback_quietly(connection)
            raise

    def _rollback_quietly(self, connection: "pymysql.connections.Connection[Any]") -> None:
        try:
            connection.rollback()
        except pymysql.err.Error:
            self._connection = None  # a connection that cannot roll back is not reused

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@lru_cache(maxsize=1)
def get_database() -> Database:
    """The process-wide database handle (kept across warm Lambda invocations)."""
    return Database(get_settings())
