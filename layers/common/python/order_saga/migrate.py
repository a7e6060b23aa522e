"""Schema migrations: the versioned SQL files beside this module, applied with yoyo-migrations,
and the application's own login, which may only read and write rows.

In AWS they run through RDS Proxy as a deploy-time trigger, which can come before the proxy's
target is AVAILABLE (a new instance registers minutes after the proxy exists): `wait_for_server`
connects until the server answers, for a bounded time, before anything is applied.
"""

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pymysql
from yoyo import get_backend, read_migrations

from .db import (
    CR_CONN_HOST_ERROR,
    CR_CONNECTION_ERROR,
    CR_SERVER_GONE,
    CR_SERVER_LOST,
    Credentials,
    translate_error,
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
APPLICATION_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, EXECUTE"  # EXECUTE: the steps' stored procedures
IDENTIFIER = re.compile(r"^\w+$")
# A server (or a proxy without an available target) that does not answer yet; a refused login or
# a missing database is never waited out.
NOT_ANSWERING_YET = {CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_SERVER_LOST, CR_SERVER_GONE}
# Within the trigger's 5 minutes: the wait, then the migrations themselves.
WAIT_SECONDS = 180.0
WAIT_PAUSE_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 10


def connect(creds: Credentials, *, ca_file: str | None = None) -> "pymysql.connections.Connection[Any]":
    """A connection as `creds` (without a default database), TLS verified against `ca_file` if given."""
    return pymysql.connect(
        host=creds.host,
        port=creds.port,
        user=creds.user,
        password=creds.password,
        ssl={"ca": ca_file} if ca_file else None,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )


def wait_for_server(
    creds: Credentials,
    *,
    ca_file: str | None = None,
    budget: float = WAIT_SECONDS,
    pause: float = WAIT_PAUSE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Connect until the server answers, trying again every `pause` seconds for at most `budget`;
    return the attempts it took. Past the budget, or on any other error, the typed error of the
    last attempt (DatabaseUnavailable, ConfigurationError) is raised."""
    deadline = time.monotonic() + budget
    attempts = 0
    while True:
        attempts += 1
        try:
            connect(creds, ca_file=ca_file).close()
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            if code not in NOT_ANSWERING_YET or time.monotonic() + pause > deadline:
                raise translate_error(exc, creds) from exc
            sleep(pause)
        else:
            return attempts


def backend_url(creds: Credentials, *, ca_file: str | None = None) -> str:
    """yoyo's URL; with `ca_file`, TLS verified against it (RDS Proxy requires TLS)."""
    user, password = quote(creds.user, safe=""), quote(creds.password, safe="")
    url = f"mysql://{user}:{password}@{creds.host}:{creds.port}/{creds.database}"
    # yoyo hands unknown query arguments to PyMySQL's connect() as they are.
    return f"{url}?ssl_ca={quote(ca_file, safe='')}" if ca_file else url


def apply_migrations(creds: Credentials, *, ca_file: str | None = None) -> list[str]:
    """Apply the migrations not yet applied; return their ids (empty when the schema is current)."""
    try:
        backend = get_backend(backend_url(creds, ca_file=ca_file))
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    except pymysql.err.MySQLError as exc:
        raise translate_error(exc, creds) from exc
    return [migration.id for migration in pending]


def ensure_application_user(
    admin: Credentials, user: str, password: str, *, ca_file: str | None = None
) -> None:
    """Create `user` (from any host, through the proxy) with DML on the schema and nothing else.

    An existing user keeps its password, which its rotation owns from then on; the grants are
    applied again, which changes nothing when they are already there.
    """
    if not IDENTIFIER.match(admin.database):
        raise ValueError(f"unexpected database name {admin.database!r}")
    try:
        with connect(admin, ca_file=ca_file) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
            cursor.execute(f"GRANT {APPLICATION_PRIVILEGES} ON `{admin.database}`.* TO %s@'%%'", (user,))
    except pymysql.err.MySQLError as exc:
        raise translate_error(exc, admin) from exc
