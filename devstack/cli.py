"""`order-saga`: the command line of the local stack (and a client of the deployed system)."""

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from order_client import commands as order_commands
from order_ops import cli as ops_cli
from order_saga.cache import check_redis, create_redis
from order_saga.db import Database
from order_saga.errors import OrderSagaError
from order_saga.migrate import apply_migrations
from order_saga.settings import Settings

from . import (
    commands_aws,
    commands_chaos,
    commands_console,
    commands_gateway,
    commands_stack,
    commands_token,
    services,
)
from .envfile import load_env
from .issuer.process import local_issuer


def clean_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Report an expected failure as one line on stderr and exit 1, never as a stack trace."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (OrderSagaError, services.ServiceError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Run and drive the order saga locally."""
    load_env()
    ctx.meta[order_commands.TOKEN_ISSUER] = local_issuer()  # `orders` mints the local issuer's tokens


@main.group(name="services")
def services_group() -> None:
    """The project-private MariaDB and Redis servers."""


@services_group.command("up")
@clean_errors
def services_up() -> None:
    """Start MariaDB and Redis (idempotent; waits until they answer)."""
    for line in services.services_up():
        click.echo(line)


@services_group.command("down")
@clean_errors
def services_down() -> None:
    """Stop them; no process of ours is left behind."""
    for line in services.services_down():
        click.echo(line)


@services_group.command("status")
def services_status() -> None:
    """Say which servers are running; exit 1 when one is not."""
    status = services.services_status()
    for name, running in status.items():
        click.echo(f"{name}: {'running' if running else 'stopped'}")
    sys.exit(0 if all(status.values()) else 1)


@main.command()
@clean_errors
def migrate() -> None:
    """Apply the schema migrations that are not applied yet."""
    settings = Settings()
    applied = apply_migrations(Database(settings).credentials)
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@main.command()
@clean_errors
def check() -> None:
    """Connect to MySQL and Redis with the current settings and say what answered."""
    settings = Settings()
    database = Database(settings)
    with database.transaction() as cursor:
        cursor.execute("SELECT VERSION() AS version")
        row = cursor.fetchone()
    click.echo(f"mysql: {row['version'] if row else '?'} at {settings.mysql_host}:{settings.mysql_port}")
    client = create_redis(settings)
    check_redis(client, settings)
    click.echo(f"redis: {client.info('server')['redis_version']}")


main.add_command(commands_token.token)
main.add_command(commands_token.issuer)
main.add_command(order_commands.orders)
main.add_command(commands_chaos.chaos)
main.add_command(commands_gateway.gateway)

for _group in commands_aws.COMMANDS:  # the local AWS stack: aws, faults
    main.add_command(_group)

for _command in ops_cli.COMMANDS:  # the operator tools: attention, audit, executions, dlq, inventory
    main.add_command(_command)

for _command in commands_stack.COMMANDS:  # the whole stack: up, down, run, demo
    main.add_command(_command)

for _command in commands_console.COMMANDS:  # the local console
    main.add_command(_command)
