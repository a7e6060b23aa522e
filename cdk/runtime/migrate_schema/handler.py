"""Deploy-time trigger: wait until RDS Proxy reaches the database (its target may not be
AVAILABLE yet), apply the schema migrations before the saga runs, then make sure the application
user exists.

It logs in as the master user (MYSQL_SECRET_ARN); the application user's secret
(MYSQL_APP_SECRET_ARN) holds the login to create. The shared layer carries the migrations and the
code; a failure fails the deployment, which is the point.
"""

import os
import ssl
from typing import Any

from order_saga.db import load_credentials
from order_saga.migrate import apply_migrations, ensure_application_user, wait_for_server
from order_saga.secrets import read_secret
from order_saga.settings import get_settings

APP_SECRET_SETTING = "MYSQL_APP_SECRET_ARN"  # noqa: S105 - a setting's name, not a secret


def handler(_event: dict[str, Any], _context: Any) -> dict[str, Any]:
    settings = get_settings()
    # The proxy requires TLS; its certificate chains to a public CA in the system bundle.
    ca_file = ssl.get_default_verify_paths().cafile if settings.mysql_tls else None
    admin = load_credentials(settings)
    attempts = wait_for_server(admin, ca_file=ca_file)
    applied = apply_migrations(admin, ca_file=ca_file)
    app = read_secret(
        os.environ[APP_SECRET_SETTING], setting=APP_SECRET_SETTING, max_age=0, as_json=True, fresh=True
    )
    ensure_application_user(admin, app["username"], app["password"], ca_file=ca_file)
    return {"applied": applied, "application_user": app["username"], "connect_attempts": attempts}
