"""Deploy-time trigger: apply the schema migrations through RDS Proxy before the saga runs.

The shared layer carries the migrations and the code; this handler only picks TLS and reports
what it applied (a failure fails the deployment, which is the point).
"""

import ssl
from typing import Any

from order_saga.db import load_credentials
from order_saga.migrate import apply_migrations
from order_saga.settings import get_settings


def handler(_event: dict[str, Any], _context: Any) -> dict[str, list[str]]:
    settings = get_settings()
    # The proxy requires TLS; its certificate chains to a public CA in the system bundle.
    ca_file = ssl.get_default_verify_paths().cafile if settings.mysql_tls else None
    return {"applied": apply_migrations(load_credentials(settings), ca_file=ca_file)}
