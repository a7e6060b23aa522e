"""The whole local stack in one command: MariaDB, Redis, the payment gateway server, moto with the
local Lambda invoker, and the gRPC edge on 127.0.0.1:50051, with a demo catalog. `order-saga up`
starts what is not running (and is harmless when all is), `order-saga down` stops everything,
`order-saga run` stays in the foreground until Ctrl-C. Each part writes how to reach it to
`.devstack/env`.
"""

import os
import sys
from decimal import Decimal
from pathlib import Path

from grpc_edge.healthcheck import probe
from grpc_edge.settings import EdgeSettings
from order_saga.cache import create_redis
from order_saga.catalog import set_product
from order_saga.db import Database
from order_saga.migrate import apply_migrations
from order_saga.settings import Settings

from .aws import aws_down, aws_up
from .console.server import console_server
from .envfile import read_env, remove_env, server_environment, update_env
from .prometheus import prometheus_server
from .services import LocalServer, ensure_packages, services_down, services_up

# product_id: (name, unit price, stock) — what `make demo` and a newcomer's first orders use.
DEMO_CATALOG = {
    "book": ("A book about sagas", Decimal("12.50"), 100),
    "pen": ("A pen", Decimal("1.20"), 1000),
    "lamp": ("A desk lamp", Decimal("45.00"), 10),
}


LOCAL_WATCHDOG_GRACE_SECONDS = 60


class EdgeServer(LocalServer):
    name = "edge"
    binary = "grpc_edge"  # `python -m grpc_edge` is what the pid check finds in the command line
    port_setting = "DEVSTACK_GRPC_PORT"

    def __init__(self, port: int, metrics_port: int, state_dir: Path | None = None) -> None:
        super().__init__(port, state_dir)
        self.metrics_port = metrics_port

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.binary]

    def process_env(self) -> dict[str, str]:
        """The settings every other part wrote, so the edge finds MySQL, Redis, AWS and its key."""
        return (
            server_environment()
            | read_env()
            | {
                "GRPC_HOST": "127.0.0.1",
                "GRPC_PORT": str(self.port),
                "METRICS_PORT": str(self.metrics_port),
                "POWERTOOLS_SERVICE_NAME": "grpc-edge",
                # moto emits no execution events: the reconciler's pass runs the saga watchdog
                "WATCHDOG_GRACE_SECONDS": str(LOCAL_WATCHDOG_GRACE_SECONDS),
            }
        )

    def is_healthy(self) -> bool:
        return self.pid() is not None and probe(EdgeSettings(grpc_port=self.port))

    def env(self) -> dict[str, str]:
        return {
            "ORDERS_GRPC_ADDRESS": f"127.0.0.1:{self.port}",
            "EDGE_METRICS_URL": f"http://127.0.0.1:{self.metrics_port}/metrics",
        }


def edge_server() -> EdgeServer:
    return EdgeServer(
        int(os.environ.get("DEVSTACK_GRPC_PORT", "50051")),
        int(os.environ.get("DEVSTACK_METRICS_PORT", "9464")),
    )


def seed_catalog(settings: Settings) -> None:
    """Create the demo products that are missing (existing ones keep their stock)."""
    database = Database(settings)
    with database.transaction() as cursor:
        cursor.execute("SELECT product_id FROM inventory")
        present = {row["product_id"] for row in cursor.fetchall()}
    cache = create_redis(settings)
    for product_id, (name, price, stock) in DEMO_CATALOG.items():
        if product_id not in present:
            set_product(
                database,
                cache,
                product_id=product_id,
                stock=stock,
                unit_price=price,
                currency="EUR",
                name=name,
            )
    database.close()


def stack_up(*, with_prometheus: bool = False) -> list[str]:
    lines = services_up()
    os.environ.update(read_env())
    settings = Settings()
    applied = apply_migrations(Database(settings).credentials)
    lines.append(f"schema: applied {', '.join(applied)}" if applied else "schema: up to date")
    lines += aws_up(settings)
    seed_catalog(settings)
    edge = edge_server()
    lines.append(edge.start())
    update_env(**edge.env())
    extras: list[LocalServer] = [console_server(), *([prometheus_server()] if with_prometheus else [])]
    ensure_packages(tuple(binary for server in extras for binary in server.programs))
    for server in extras:
        lines.append(server.start())
        update_env(**server.env())
    return lines


def stack_down() -> list[str]:
    lines = [prometheus_server().stop(), console_server().stop()]
    remove_env("PROMETHEUS_URL", "CONSOLE_URL")
    return [*lines, edge_server().stop(), *aws_down(), *services_down()]
