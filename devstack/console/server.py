"""The console as a part of the local stack: a process started, owned and stopped like the others."""

import os
import sys
from typing import Any

import boto3
import uvicorn

from devstack.envfile import read_env, server_environment
from devstack.services import LocalServer, http_ok
from order_saga.settings import Settings

from .app import Sources, create_app

HOST = "127.0.0.1"  # loopback only: the console shows every user's orders and has no login
DEFAULT_PORT = 8080


class ConsoleServer(LocalServer):
    name = "console"
    binary = "devstack.console"  # `python -m devstack.console` is what the pid check finds
    port_setting = "DEVSTACK_CONSOLE_PORT"
    programs = ("dot",)

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.binary]

    def process_env(self) -> dict[str, str]:
        return server_environment() | read_env() | {"CONSOLE_PORT": str(self.port)}

    def is_healthy(self) -> bool:
        return http_ok(f"{self.url}/healthz")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        return {"CONSOLE_URL": self.url}


def console_server() -> ConsoleServer:
    return ConsoleServer(int(os.environ.get("DEVSTACK_CONSOLE_PORT", str(DEFAULT_PORT))))


def aws_client(service: str) -> Any:
    """A client of the AWS endpoint in the environment (the local moto server, or AWS)."""
    return boto3.client(service)  # type: ignore[call-overload]


def serve() -> None:
    app = create_app(Sources(Settings(), aws_client))
    port = int(os.environ.get("CONSOLE_PORT", str(DEFAULT_PORT)))
    uvicorn.run(app, host=HOST, port=port, log_level="warning", timeout_graceful_shutdown=2)
