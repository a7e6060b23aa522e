"""Schema migrations: the versioned SQL files beside this module, applied with yoyo-migrations,
and the application's own login, which may only read and write rows."""

import re
from pathlib import Path
from urllib.parse import quote

import pymysql
from yoyo import get_backend, read_migrations

from .db import Credentials, translate_error

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
APPLICATION_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
IDENTIFIER = re.compile(r"^\w+$")


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
        connection = pymysql.connect(
            host=admin.host,
            port=admin.port,
            user=admin.user,
            password=admin.password,
            ssl={"ca": ca_file} if ca_file else None,
            autocommit=True,
        )
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
            cursor.execute(f"GRANT {APPLICATION_PRIVILEGES} ON `{admin.database}`.* TO %s@'%%'", (user,))
    except pymysql.err.MySQLError as exc:
        raise translate_error(exc, admin) from exc
