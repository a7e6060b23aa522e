"""The local AWS stack: the moto server process, and bringing it up wired, or down.

`order-saga aws up` starts the payment gateway server (devstack/gateway/), the token issuer that
stands in for Cognito (devstack/issuer/) and moto
(devstack/moto_server.py) on DEVSTACK_MOTO_PORT, creates every resource from the function
definitions and the ASL files (devstack/wiring.py), with the gateway's API key in a secret, and
writes the endpoint, the state machine ARNs, the queue URLs and the gateway's URL and secret to
`.devstack/env`, with the issuer's URL and JWKS URL. Each wiring is a release (function versions,
state machine versions, the alias `live`); `order-saga release` makes one on the running stack,
from the checkout or another source tree. It is separate from
`services up` because the MariaDB/Redis pair is useful alone (integration tests, migrations),
while the AWS part needs the database first (the functions' secret points at it).
"""

import sys
import urllib.error
import urllib.request
from pathlib import Path

from order_saga.settings import Settings

from .aws_settings import AwsStackSettings
from .envfile import remove_env, update_env
from .gateway.process import payment_gateway_server
from .issuer.process import token_issuer_server
from .paths import REPO_ROOT
from .services import LocalServer, ServiceError


class MotoServer(LocalServer):
    name = "moto"
    binary = "devstack.moto_server"  # what the pid check looks for in the process's command line
    port_setting = "DEVSTACK_MOTO_PORT"

    def __init__(self, settings: AwsStackSettings) -> None:
        super().__init__(settings.moto_port)
        self.settings = settings

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", self.binary,
            "--port", str(self.port),
            "--retry-time-scale", str(self.settings.retry_time_scale),
        ]  # fmt: skip

    def is_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.settings.endpoint_url}/moto-api/", timeout=2) as reply:  # noqa: S310 - our own local URL
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.settings.endpoint_url,
            "AWS_REGION": self.settings.region,
            "AWS_DEFAULT_REGION": self.settings.region,
            # moto accepts any credentials; these keep boto3 from looking for real ones.
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
        }


def aws_up(database: Settings, settings: AwsStackSettings | None = None) -> list[str]:
    """Start the gateway, the token issuer and moto (if needed), wire every resource, write the
    settings to `.devstack/env`."""
    from .wiring import GatewayAccess, wire  # noqa: PLC0415 - boto3 is only needed here

    settings = settings or AwsStackSettings()
    gateway = payment_gateway_server()
    issuer = token_issuer_server()
    server = MotoServer(settings)
    lines = [gateway.start(), issuer.start(), server.start()]
    wiring = wire(settings, database, GatewayAccess(gateway.url, gateway.api_key))
    update_env(**server.env(), **issuer.env(), **wiring.env())
    lines += wiring.describe()
    return lines


def release(
    database: Settings, source: Path = REPO_ROOT, settings: AwsStackSettings | None = None
) -> list[str]:
    """Publish the functions' code of the source tree `source` on the running stack: new versions
    of what changed, and the alias `live` on the state machine versions that call them. What runs
    keeps running on the versions it started on. The definitions and the configuration come from
    this checkout. What was published, one line each."""
    from .wiring import GatewayAccess, wire  # noqa: PLC0415 - boto3 is only needed here

    settings = settings or AwsStackSettings()
    if not aws_running(settings):
        raise ServiceError(f"no local AWS stack on {settings.endpoint_url}: start it (order-saga aws up)")
    gateway = payment_gateway_server()
    wiring = wire(settings, database, GatewayAccess(gateway.url, gateway.api_key), source)
    update_env(**wiring.env())
    return wiring.describe()


def aws_down(settings: AwsStackSettings | None = None) -> list[str]:
    """Stop moto, the issuer and the gateway, and take their settings out of `.devstack/env` (they
    would point at nothing). The gateway's books and the issuer's keys stay for the next start."""
    from .wiring import ENV_KEYS  # noqa: PLC0415

    server = MotoServer(settings or AwsStackSettings())
    issuer = token_issuer_server()
    lines = [server.stop(), issuer.stop(), payment_gateway_server().stop()]
    remove_env(*server.env(), *issuer.env(), *ENV_KEYS)
    return lines


def aws_running(settings: AwsStackSettings | None = None) -> bool:
    server = MotoServer(settings or AwsStackSettings())
    return server.pid() is not None and server.is_healthy()


__all__ = ["MotoServer", "ServiceError", "aws_down", "aws_running", "aws_up", "release"]
