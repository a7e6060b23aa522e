"""`order-saga chaos`: the seeded chaos campaign, or the crash matrix, against the running local stack."""

import json
import os
import signal
import sys
from functools import partial
from pathlib import Path

import boto3
import click

from order_ops.commands_audit import attention_queues, audit_books
from order_saga.manifest import Setting, Step
from order_saga.payment_gateway import create_gateway
from order_saga.settings import Settings

from .aws_settings import AwsStackSettings
from .chaos import Campaign
from .chaos_plan import make_plan
from .chaos_stack import ChaosStack
from .commands_aws import env_value, reported
from .crash_matrix import STEPS, Cell, CrashFault, CrashMatrix, cells
from .gateway.process import payment_gateway_server
from .issuer.process import local_issuer
from .paths import STATE_DIR
from .services import MariaDB, Redis
from .stack import edge_server


def local_chaos_stack() -> ChaosStack:
    """The stack `order-saga up` runs, as .devstack/env describes it."""
    settings = Settings()
    sfn, sqs = boto3.client("stepfunctions"), boto3.client("sqs")
    return ChaosStack(
        address=env_value("ORDERS_GRPC_ADDRESS"),
        settings=settings,
        sfn=sfn,
        sqs=sqs,
        saga_arn=env_value(Setting.ORDER_SAGA_STATE_MACHINE_ARN),
        notification_queue_url=env_value(Setting.NOTIFICATION_QUEUE_URL),
        edge=edge_server(),
        mariadb=MariaDB(int(os.environ.get("DEVSTACK_MYSQL_PORT", "33306"))),
        redis_server=Redis(int(os.environ.get("DEVSTACK_REDIS_PORT", "36379"))),
        retry_time_scale=AwsStackSettings().retry_time_scale,
        gateway=payment_gateway_server(),
        secrets=boto3.client("secretsmanager"),
        mint_token=local_issuer().customer_token,
        audit=partial(audit_books, settings, create_gateway(settings), sfn, sqs, attention_queues(sqs)),
    )


@click.command()
@click.option("--orders", type=click.IntRange(1), default=150, show_default=True)
@click.option("--clients", type=click.IntRange(1), default=6, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="the same seed gives the same plan")
@click.option("--settle-timeout", type=float, default=600.0, show_default=True,
              help="seconds to wait for the sagas in flight once the run is over")  # fmt: skip
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="the JSON report (default .devstack/chaos/chaos-<seed>-<orders>.json)")  # fmt: skip
@click.option("--plan-only", is_flag=True, help="print the plan (with --matrix, the cells) as JSON and exit")
@click.option("--matrix", is_flag=True, help="run the crash matrix instead (docs/reliability.md)")
@click.option("--step", "steps", multiple=True, type=click.Choice([step.value for step in STEPS]),
              help="with --matrix: only this step's cells (repeatable; default every step)")  # fmt: skip
@click.option("--fault", "kinds", multiple=True, type=click.Choice([kind.value for kind in CrashFault]),
              help="with --matrix: only this fault's cells (repeatable; default every fault)")  # fmt: skip
@reported
def chaos(
    *,
    orders: int,
    clients: int,
    seed: int,
    settle_timeout: float,
    report_path: Path | None,
    plan_only: bool,
    matrix: bool,
    steps: tuple[str, ...],
    kinds: tuple[str, ...],
) -> None:
    """Run ORDERS orders through the local stack with CLIENTS clients while faults combine, then
    audit the books. Exits 1 with the seed and the offending orders on any violation. With
    --matrix, run the crash matrix: exits 1 on any violation, unsettled or missed cell."""
    if matrix:
        chosen = cells(
            [Step(step) for step in steps] if steps else STEPS,
            [CrashFault(kind) for kind in kinds] if kinds else tuple(CrashFault),
        )
        _crash_matrix(chosen, settle_timeout, report_path, plan_only)
        return
    plan = make_plan(seed, orders, clients)
    if plan_only:
        click.echo(json.dumps(plan.as_json(), indent=2))
        return
    click.echo(f"chaos: seed {seed}, {orders} orders, {clients} clients; planned: {plan.planned()}")
    # SIGTERM (a timeout, a CI stop) ends the run like Ctrl-C: the fault plan found is put back.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = Campaign(plan, local_chaos_stack(), click.echo).run(settle_timeout)
    _report(
        result.as_json(), result.render(), report_path or STATE_DIR / "chaos" / f"chaos-{seed}-{orders}.json"
    )
    sys.exit(0 if result.ok else 1)


def _crash_matrix(
    matrix: list[Cell], settle_timeout: float, report_path: Path | None, plan_only: bool
) -> None:
    if plan_only:
        click.echo(
            json.dumps([{"step": cell.step.value, "fault": cell.fault.value} for cell in matrix], indent=2)
        )
        return
    click.echo(f"crash matrix: {len(matrix)} cells")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = CrashMatrix(local_chaos_stack(), matrix, click.echo).run(settle_timeout)
    _report(result.as_json(), result.render(), report_path or STATE_DIR / "chaos" / "crash-matrix.json")
    sys.exit(0 if result.ok else 1)


def _report(report: dict[str, object], lines: list[str], path: Path) -> None:
    """Save the JSON report, print the result and where the report is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    for line in lines:
        click.echo(line)
    click.echo(f"report: {path}")
