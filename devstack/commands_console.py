"""`order-saga console`: the local console, a read-only web page of orders and their sagas."""

import sys

import click

from order_saga.errors import OrderSagaError

from .console.server import console_server
from .envfile import update_env
from .services import ServiceError, ensure_packages


@click.command()
def console() -> None:
    """Start the console on 127.0.0.1 (if it is not running) and print its URL."""
    server = console_server()
    try:
        ensure_packages(server.programs)
        click.echo(server.start())
    except (OrderSagaError, ServiceError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    update_env(**server.env())
    click.echo(f"console: {server.url}/orders (open it in a browser; `order-saga down` stops it)")


COMMANDS = (console,)
