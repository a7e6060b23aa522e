"""`order-saga aws|faults`: the local AWS stack and its fault plan."""

import os
import sys
from pathlib import Path

import click

from order_ops.reporting import reporting
from order_saga.settings import Settings

from . import faults
from .aws import aws_down, aws_running, aws_up, release
from .aws_settings import AwsStackSettings
from .paths import REPO_ROOT
from .releases import ReleaseSourceError
from .services import ServiceError

reported = reporting(ServiceError, faults.FaultPlanError, ReleaseSourceError)


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


@click.command("release")
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=REPO_ROOT,
    show_default="this checkout",
    help="the source tree whose functions/ and layers/common/python are published (another checkout)",
)
@reported
def release_command(source: Path) -> None:
    """Publish a release on the running local stack, as a deploy does in AWS: a new version of each
    function whose code changed, new state machine versions calling them, the alias live moved.
    Executions already running finish on their own release."""
    for line in release(Settings(), source.resolve()):
        click.echo(line)


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


COMMANDS = (aws_group, faults_group, release_command)
