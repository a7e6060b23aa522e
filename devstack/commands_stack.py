"""`order-saga up | down | run | demo`: the whole local stack, and the main job on it."""

import os
import signal
import sys
import time

import click

from order_saga.errors import OrderSagaError
from order_saga.settings import Settings

from .demo import run_demo
from .envfile import read_env
from .services import ServiceError
from .stack import edge_server, stack_down, stack_up


def _up(*, with_prometheus: bool = False) -> None:
    try:
        for line in stack_up(with_prometheus=with_prometheus):
            click.echo(line)
    except (OrderSagaError, ServiceError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    os.environ.update(read_env())


def ready_line() -> str:
    """Where the running stack answers: the gRPC edge, the console (and Prometheus when it runs)."""
    env = read_env()
    prometheus = f"; Prometheus {env['PROMETHEUS_URL']}" if "PROMETHEUS_URL" in env else ""
    return f"ready: gRPC {env['ORDERS_GRPC_ADDRESS']}; console {env['CONSOLE_URL']}/orders{prometheus}"


@click.command()
@click.option("--with-prometheus", is_flag=True, help="also run Prometheus (Debian's) scraping the edge")
def up(*, with_prometheus: bool) -> None:
    """Start MariaDB, Redis, the gateway server, the token issuer, the local AWS stack, the gRPC edge
    and the console (what is not running)."""
    _up(with_prometheus=with_prometheus)
    click.echo(f"{ready_line()}; settings in .devstack/env")


@click.command()
def down() -> None:
    """Stop the whole local stack; no process of ours is left behind."""
    for line in stack_down():
        click.echo(line)


@click.command()
def run() -> None:
    """Start the whole stack and keep it up until Ctrl-C, then stop it."""
    _up()
    edge = edge_server()
    click.echo(f"{ready_line()}; logs in .devstack/*/; Ctrl-C stops")
    # Ctrl-C (even when started where SIGINT was ignored, as in a background job) and SIGTERM both
    # end the loop below, and the `finally` stops the stack.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while edge.pid() is not None:
            time.sleep(1)
        click.echo("the edge stopped; see .devstack/edge/edge.log", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        for line in stack_down():
            click.echo(line)


@click.command()
def demo() -> None:
    """Start the stack if needed, then run the demo scenarios through the gRPC API."""
    _up()
    click.echo("")
    passed = run_demo(read_env()["ORDERS_GRPC_ADDRESS"], Settings(), click.echo)
    click.echo(f"see every order and its saga in the console: {read_env()['CONSOLE_URL']}/orders")
    click.echo("the stack stays up: explore with `order-saga orders list`, stop it with `make services-down`")
    sys.exit(0 if passed else 1)


COMMANDS = (up, down, run, demo)
