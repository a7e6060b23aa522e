"""`executions` and `dlq`: the state machines' executions and the compensation DLQ of an
environment (`ORDER_SAGA_ENVIRONMENT`, `local` by default), found by their manifest names."""

import sys

import boto3
import click

from order_saga import manifest
from order_saga.db import Database
from order_saga.settings import Settings

from . import dlq, executions
from .environment import queue_url
from .reporting import reported


@click.group(name="executions")
def executions_group() -> None:
    """Executions of the state machines, in the terminal (`order-saga console` draws them)."""


@executions_group.command("list")
@click.option("--status", type=click.Choice(["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]))
@click.option("--limit", type=int, default=20, show_default=True)
@reported
def executions_list(status: str | None, limit: int) -> None:
    """The latest executions, newest first."""
    sfn = boto3.client("stepfunctions")
    rows = executions.list_executions(sfn, status, limit)
    for row in rows:
        stop = row.get("stopDate")
        took = f"{(stop - row['startDate']).total_seconds():.2f}s" if stop else "running"
        machine = executions.machine_role(row["stateMachineArn"].rsplit(":", 1)[-1])
        started = f"{row['startDate']:%Y-%m-%d %H:%M:%S}"
        click.echo(f"{started}  {machine:<18} {row['name']:<40} {row['status']:<10} {took}")
    if not rows:
        click.echo("no executions")


@executions_group.command("show")
@click.argument("order_id")
@reported
def executions_show(order_id: str) -> None:
    """The path of every execution about ORDER_ID: states, retries, errors, final status, duration."""
    sfn = boto3.client("stepfunctions")
    arns = executions.executions_of_order(sfn, order_id)
    if not arns:
        raise KeyError(f"no execution named {order_id}")
    for arn in arns:
        for line in executions.render_path(executions.path_of(sfn, arn)):
            click.echo(line)


@click.group(name="dlq")
def dlq_group() -> None:
    """The compensation DLQ: compensations that kept failing, with their full context."""


@dlq_group.command("list")
@reported
def dlq_list() -> None:
    """The messages waiting on the compensation DLQ (left in place)."""
    sqs = boto3.client("sqs")
    messages = dlq.peek(sqs, queue_url(sqs, manifest.COMPENSATION_DLQ))
    for message in messages:
        click.echo(message.summary())
    click.echo(f"{len(messages)} message(s)")


@dlq_group.command("redrive")
@click.option("--order-id", help="only this order's messages")
@reported
def dlq_redrive(order_id: str | None) -> None:
    """Run the failed compensations again; a message is deleted once its order is in the state the
    compensation owes it. Exits 1 when a message is kept (its compensation failed again)."""
    sqs = boto3.client("sqs")
    database = Database(Settings())
    try:
        report = dlq.redrive_all(
            dlq.RedriveTarget(boto3.client("lambda"), sqs, database, manifest.deployment_environment()),
            queue_url(sqs, manifest.COMPENSATION_DLQ),
            queue_url(sqs, manifest.NOTIFICATION_QUEUE),
            order_id,
        )
    finally:
        database.close()
    for line in report.lines or ["nothing to re-drive"]:
        click.echo(line)
    if report.kept:
        click.echo(f"{report.kept} message(s) kept on the queue: their compensation failed again", err=True)
        sys.exit(1)


COMMANDS = (executions_group, dlq_group)
