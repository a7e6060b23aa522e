"""Schema migrations: the versioned SQL files beside this module, applied with yoyo-migrations."""

from pathlib import Path
from urllib.parse import quote

import pymysql
from yoyo import get_backend, read_migrations

from .db import Credentials, translate_error

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


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
