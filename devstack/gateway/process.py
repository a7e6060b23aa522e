"""The local payment gateway as one of the stack's servers: started, checked and stopped like
MariaDB, Redis and moto, its store and key under `<state dir>/gateway/`."""

import os
import sys
from pathlib import Path

import urllib3

from ..services import LocalServer, ServiceError, http_ok
from .server import KEY_FILE

DEFAULT_PORT = 35100


class PaymentGatewayServer(LocalServer):
    name = "gateway"
    binary = "devstack.gateway"  # what the pid check looks for in the process's command line
    port_setting = "DEVSTACK_GATEWAY_PORT"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        """The account's newest API key, which the server keeps in its key file."""
        return (self.home / KEY_FILE).read_text().strip()

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.binary, "--port", str(self.port), "--data-dir", str(self.home)]

    def add_fault(self, fault: dict[str, object]) -> None:
        """A fault the next matching requests meet (docs/payment-gateway.md, faults on demand)."""
        self._control("POST", fault)

    def clear_faults(self) -> None:
        self._control("DELETE", {})

    def _control(self, method: str, body: dict[str, object]) -> None:
        reply = urllib3.request(method, f"{self.url}/_control/faults", json=body, timeout=10)
        if reply.status != 200:
            raise ServiceError(
                f"the gateway refused {method} /_control/faults ({reply.status}): {reply.data!r}"
            )

    def is_healthy(self) -> bool:
        return http_ok(f"{self.url}/health")

    def env(self) -> dict[str, str]:
        return {"PAYMENT_GATEWAY_URL": self.url}


def payment_gateway_server(state_dir: Path | None = None) -> PaymentGatewayServer:
    return PaymentGatewayServer(int(os.environ.get("DEVSTACK_GATEWAY_PORT", str(DEFAULT_PORT))), state_dir)
