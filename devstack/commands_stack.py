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


def _up() -> None:
    try:
        for line in stack_up():
            click.echo(line)
    except (OrderSagaError, ServiceError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    os.environ.update(read_env())


@click.command()
def up() -> None:
    """Start MariaDB, Redis, the local AWS stack and the gRPC edge (what is not running yet)."""
    _up()
    click.echo(f"ready: gRPC {read_env()['ORDERS_GRPC_ADDRESS']}; settings in .devstack/env")


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
    click.echo(f"ready: gRPC {read_env()['ORDERS_GRPC_ADDRESS']}; logs in .devstack/*/; Ctrl-C stops")
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
    click.echo("the stack stays up: explore with `order-saga orders list`, stop it with `make services-down`")
    sys.exit(0 if passed else 1)


COMMANDS = (up, down, run, demo)
