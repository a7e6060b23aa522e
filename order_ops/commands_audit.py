"""`order-saga audit`: check the books of the running stack, or of a deployed environment.

The domain lives in `order_ops.audit`; this module only finds the sources: MySQL and the payment
gateway from the settings (the gateway's key from the secret PAYMENT_GATEWAY_SECRET_ARN names),
the executions and DLQs from the AWS endpoint of `.devstack/env` (or AWS itself).
"""

import json
import sys
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import click

from order_ops.audit import (
    AuditReport,
    HttpLedger,
    OwedInMySql,
    QueueAttention,
    StepFunctionsExecutions,
    read_books,
    run_audit,
)
from order_ops.audit.sources import AttentionSource
from order_saga import manifest
from order_saga.db import Database
from order_saga.payment_gateway import HttpGateway, create_gateway
from order_saga.settings import Settings

from . import dlq
from .environment import queue_url
from .executions import machine_arns
from .reporting import reported

# The queues whose messages are records of what an order still owes (a DLQ is read, never the
# live notification queue: peeking it would count against each message's receive limit).
ATTENTION_QUEUES = {
    "compensation-dlq": manifest.COMPENSATION_DLQ,
    "notification-dlq": manifest.NOTIFICATION_DLQ,
}


def attention_sources(sqs: Any, queue_urls: dict[str, str]) -> list[AttentionSource]:
    return [QueueAttention(name, partial(_bodies, sqs, url)) for name, url in queue_urls.items()]


def _bodies(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    return [message.body for message in dlq.peek(sqs, queue_url)]


def attention_queues(sqs: Any) -> dict[str, str]:
    """The environment's attention queues, found by their manifest names."""
    return {name: queue_url(sqs, queue) for name, queue in ATTENTION_QUEUES.items()}


def audit_books(
    settings: Settings,
    gateway: HttpGateway,
    sfn: Any,
    sqs: Any,
    queue_urls: dict[str, str],
    *,
    deadline_seconds: float,
    stock_baseline: dict[str, int] | None = None,
    since: datetime | None = None,
) -> AuditReport:
    """The audit of the books the settings point at against the gateway's ledger, with the
    executions of `sfn`'s state machines and the records on the named queues."""
    database = Database(settings)
    try:
        return run_audit(
            database,
            HttpLedger(gateway),
            StepFunctionsExecutions(sfn, machine_arns(sfn)),
            [OwedInMySql(database), *attention_sources(sqs, queue_urls)],
            deadline_seconds=deadline_seconds,
            stock_baseline=stock_baseline,
            since=since,
        )
    finally:
        database.close()


def save_stock_baseline(settings: Settings, path: Path) -> dict[str, int]:
    database = Database(settings)
    try:
        baseline = read_books(database).stock_baseline()
    finally:
        database.close()
    path.write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n")
    return baseline


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--deadline", "deadline_seconds", type=float, default=3600.0, show_default=True,
              help="seconds after which a PENDING or CANCELLING order counts as stuck")  # fmt: skip
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="stock baseline file (--save-baseline): stock moved only by confirmed units")  # fmt: skip
@click.option("--save-baseline", type=click.Path(dir_okay=False, path_type=Path),
              help="write the stock baseline (stock + committed units per product), then exit")  # fmt: skip
@click.option("--offenders", type=int, default=3, show_default=True, help="offenders shown per invariant")
@reported
def audit(
    *,
    as_json: bool,
    deadline_seconds: float,
    baseline: Path | None,
    save_baseline: Path | None,
    offenders: int,
) -> None:
    """Check the books: orders, payments vs the gateway's ledger, stock, executions, notices, saga_log.

    Exits 1 on any violation."""
    settings = Settings()
    if save_baseline is not None:
        saved = save_stock_baseline(settings, save_baseline)
        click.echo(f"stock baseline of {len(saved)} product(s) written to {save_baseline}")
        return
    stock_baseline = json.loads(baseline.read_text()) if baseline else None
    sqs = boto3.client("sqs")
    report = audit_books(
        settings,
        create_gateway(settings),  # its key from the secret PAYMENT_GATEWAY_SECRET_ARN names
        boto3.client("stepfunctions"),
        sqs,
        attention_queues(sqs),
        deadline_seconds=deadline_seconds,
        stock_baseline=stock_baseline,
    )
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for line in report.render(offenders):
            click.echo(line)
    sys.exit(0 if report.ok else 1)
