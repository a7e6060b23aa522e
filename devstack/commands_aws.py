"""`order-saga aws|faults|executions|dlq`: the local AWS stack and what runs on it."""

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import boto3
import click
from botocore.exceptions import BotoCoreError, ClientError

from order_saga.errors import OrderSagaError
from order_saga.settings import Settings

from . import dlq, executions, faults
from .aws import aws_down, aws_running, aws_up
from .aws_settings import AwsStackSettings
from .services import ServiceError

EXPECTED = (OrderSagaError, ServiceError, faults.FaultPlanError, ClientError, BotoCoreError, KeyError)


def reported(command: Callable[..., Any]) -> Callable[..., Any]:
    """An expected failure (bad input, a stack that is down) is one line on stderr and exit 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EXPECTED as exc:
            hint = ""
            if isinstance(exc, BotoCoreError):
                hint = (
                    " (is the local AWS stack up? order-saga aws up)"
                    if os.environ.get("AWS_ENDPOINT_URL")
                    else " (no local AWS stack: order-saga aws up; for AWS, configure a region)"
                )
            click.echo(f"error: {exc}{hint}", err=True)
            sys.exit(1)

    return wrapper


def env_value(key: str) -> str:
    value = os.environ.get(key)
    if not value:
        raise KeyError(f"{key} is not set: start the local AWS stack (order-saga aws up) or export it")
    return value


@click.group(name="aws")
def aws_group() -> None:
    """The local AWS stack: moto with Step Functions execution and the local Lambda invoker."""


@aws_group.command("up")
@reported
def aws_up_command() -> None:
    """Start moto (idempotent), create every resource, write .devstack/env."""
    for line in aws_up(Settings()):
        click.echo(line)


@aws_group.command("down")
@reported
def aws_down_command() -> None:
    """Stop moto (its resources and executions live in memory and are gone)."""
    for line in aws_down():
        click.echo(line)


@aws_group.command("status")
def aws_status_command() -> None:
    """Say whether the local AWS endpoint runs; exit 1 when not."""
    settings = AwsStackSettings()
    running = aws_running(settings)
    click.echo(f"moto: {'running on ' + settings.endpoint_url if running else 'stopped'}")
    sys.exit(0 if running else 1)


@click.group(name="faults")
def faults_group() -> None:
    """The fault plan of the local Lambda invoker (.devstack/faults.json)."""


@faults_group.command("set")
@click.argument("function", required=False)
@click.option("--error", "error_type", help="fail with this errorType (e.g. PaymentGatewayUnavailable)")
@click.option("--message", default=None, help="errorMessage of an injected error")
@click.option("--delay", "delay_seconds", type=float, help="start the handler this many seconds late")
@click.option("--timeout", is_flag=True, help="run the handler, then time out (the answer is lost)")
@click.option("--duplicate", is_flag=True, help="run the handler twice with the same event")
@click.option("--hold", is_flag=True, help="hold the call until this fault is cleared (at most the timeout)")
@click.option("--times", type=int, help="only for the next N matching calls (default: always)")
@click.option("--probability", type=float, default=1.0, show_default=True, help="chance per call")
@click.option("--order-id", help="only invocations about this order")
@click.option("--file", "plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="replace the whole plan with this JSON file instead")  # fmt: skip
@reported
def faults_set(  # one option per field of a fault; click passes them by name
    *,
    function: str | None,
    error_type: str | None,
    message: str | None,
    delay_seconds: float | None,
    timeout: bool,
    duplicate: bool,
    hold: bool,
    times: int | None,
    probability: float,
    order_id: str | None,
    plan_file: Path | None,
) -> None:
    """Add a fault for FUNCTION (exactly one of --error, --delay, --timeout, --duplicate, --hold)."""
    if plan_file is not None:
        if function:
            raise faults.FaultPlanError("give either --file or a FUNCTION with its fault, not both")
        plan = faults.replace_plan(plan_file.read_text(), str(plan_file))
        click.echo(f"plan replaced: {len(plan.faults)} fault(s)")
        return
    kinds = {
        faults.FaultKind.ERROR: error_type is not None,
        faults.FaultKind.DELAY: delay_seconds is not None,
        faults.FaultKind.TIMEOUT: timeout,
        faults.FaultKind.DUPLICATE: duplicate,
        faults.FaultKind.HOLD: hold,
    }
    chosen = [kind for kind, given in kinds.items() if given]
    if not function or len(chosen) != 1:
        raise faults.FaultPlanError(
            "give a FUNCTION and exactly one of --error, --delay, --timeout, --duplicate, --hold"
        )
    fault = faults.make_fault(
        function=function,
        kind=chosen[0],
        error_type=error_type,
        delay_seconds=delay_seconds,
        times=times,
        probability=probability,
        order_id=order_id,
        **({"message": message} if message else {}),
    )
    faults.add_fault(fault)
    click.echo(f"added: {fault.describe()}")


@faults_group.command("clear")
@click.argument("function", required=False)
@reported
def faults_clear(function: str | None) -> None:
    """Remove every fault, or those of FUNCTION."""
    click.echo(f"removed {faults.clear_faults(function)} fault(s)")


@faults_group.command("show")
@reported
def faults_show() -> None:
    """List the active faults."""
    plan = faults.read_plan()
    for fault in plan.faults:
        click.echo(fault.describe())
    if not plan.faults:
        click.echo("no faults: every invocation runs normally")


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
        machine = row["stateMachineArn"].rsplit(":", 1)[-1]
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
    messages = dlq.peek(boto3.client("sqs"), env_value("COMPENSATION_DLQ_URL"))
    for message in messages:
        click.echo(message.summary())
    click.echo(f"{len(messages)} message(s)")


@dlq_group.command("redrive")
@click.option("--order-id", help="only this order's messages")
@reported
def dlq_redrive(order_id: str | None) -> None:
    """Run the failed compensations again; a message is deleted once its compensation completes.
    Exits 1 when a message is kept (its compensation failed again)."""
    report = dlq.redrive_all(
        boto3.client("lambda"),
        boto3.client("sqs"),
        env_value("COMPENSATION_DLQ_URL"),
        env_value("NOTIFICATION_QUEUE_URL"),
        order_id,
    )
    for line in report.lines or ["nothing to re-drive"]:
        click.echo(line)
    if report.kept:
        click.echo(f"{report.kept} message(s) kept on the queue: their compensation failed again", err=True)
        sys.exit(1)


COMMANDS = (aws_group, faults_group, executions_group, dlq_group)
