"""The local token issuer as one of the stack's servers: started, checked and stopped like the
payment gateway, its keys under `<state dir>/issuer/keys/`."""

import os
import sys
from pathlib import Path

from ..services import LocalServer, http_ok
from .keys import KeyRing
from .server import USER_POOL_ID
from .tokens import LocalIssuer

DEFAULT_PORT = 35200


class TokenIssuerServer(LocalServer):
    name = "issuer"
    binary = "devstack.issuer"  # what the pid check looks for in the process's command line
    port_setting = "DEVSTACK_ISSUER_PORT"

    @property
    def url(self) -> str:
        """The issuer (`iss`) of its tokens, shaped like a Cognito user pool's."""
        return f"http://127.0.0.1:{self.port}/{USER_POOL_ID}"

    @property
    def keys(self) -> KeyRing:
        return KeyRing(self.home / "keys")

    @property
    def issuer(self) -> LocalIssuer:
        return LocalIssuer(self.keys, self.url)

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.binary, "--port", str(self.port), "--data-dir", str(self.home)]

    def is_healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.port}/health")

    def env(self) -> dict[str, str]:
        return {"JWT_ISSUER": self.url, "JWT_JWKS_URL": self.issuer.jwks_url}


def token_issuer_server(state_dir: Path | None = None) -> TokenIssuerServer:
    return TokenIssuerServer(int(os.environ.get("DEVSTACK_ISSUER_PORT", str(DEFAULT_PORT))), state_dir)


def local_issuer(state_dir: Path | None = None) -> LocalIssuer:
    """The issuer of the stack whose state is in `state_dir` (default: this checkout's)."""
    return token_issuer_server(state_dir).issuer
