"""`order-saga attention list|show|resolve`: the orders flagged NEEDS_ATTENTION, what each still
owes (recorded in MySQL by MarkNeedsAttention and the saga watchdog), and finishing them.

`resolve` runs the saga watchdog's operator path (order_saga.watchdog.SagaWatchdog.resolve): the
owed compensations, each on its own, then FAILED or CANCELLED with the customer's notice; if a
compensation still fails, the order stays flagged with what it still owes.
"""

import click

from order_saga.cache import create_redis
from order_saga.db import Database
from order_saga.repository import fetch_order, fetch_payment, fetch_reservations
from order_saga.settings import Settings
from order_saga.watchdog import create_watchdog

from .reporting import reported

LOG_LINES = 8


@click.group(name="attention")
def attention_group() -> None:
    """Orders flagged NEEDS_ATTENTION: list them, show one, finish one."""


@attention_group.command("list")
@reported
def attention_list() -> None:
    """Every NEEDS_ATTENTION order, oldest first, with the compensations it still owes."""
    with Database(Settings()).transaction() as cursor:
        cursor.execute(
            "SELECT order_id, user_id, total, currency, owed_compensations, updated_at FROM orders"
            " WHERE status = 'NEEDS_ATTENTION' ORDER BY updated_at, order_id"
        )
        rows = cursor.fetchall()
    for row in rows:
        owed = row["owed_compensations"] or "nothing (only the final status)"
        click.echo(
            f"{row['order_id']}  {row['user_id']}  {row['total']} {row['currency']}  owes: {owed}"
            f"  since {row['updated_at']:%Y-%m-%d %H:%M:%S}"
        )
    click.echo(f"{len(rows)} order(s) need attention")


@attention_group.command("show")
@click.argument("order_id")
@reported
def attention_show(order_id: str) -> None:
    """One order: its status, what it owes, its payment and reservations, its last saga_log lines."""
    with Database(Settings()).transaction() as cursor:
        order = fetch_order(cursor, order_id)
        payment = fetch_payment(cursor, order_id)
        reservations = fetch_reservations(cursor, order_id)
        cursor.execute(
            "SELECT step, status, detail, `timestamp` FROM saga_log WHERE saga_id = %s"
            " ORDER BY id DESC LIMIT %s",
            (order_id, LOG_LINES),
        )
        log = list(reversed(cursor.fetchall()))
    click.echo(f"{order.order_id}: {order.status} ({order.reason_code or '-'})")
    click.echo(f"  owes: {', '.join(sorted(order.owed_compensations)) or 'nothing'}")
    click.echo(f"  total: {order.total} {order.currency}, user {order.user_id}")
    paid = f"{payment.status} {payment.amount} {payment.currency}" if payment else "no payment row"
    click.echo(f"  payment: {paid}")
    held = ", ".join(f"{r.product_id}x{r.quantity} {r.status}" for r in reservations) or "none"
    click.echo(f"  reservations: {held}")
    click.echo(
        f"  executions: {order.execution_arn or '-'}; cancellation {order.cancellation_execution_arn or '-'}"
    )
    for entry in log:
        click.echo(
            f"  {entry['timestamp']:%H:%M:%S}  {entry['step']}  {entry['status']}  {entry['detail'] or ''}"
        )


@attention_group.command("resolve")
@click.argument("order_id")
@reported
def attention_resolve(order_id: str) -> None:
    """Run what the order still owes, then end it FAILED or CANCELLED (and tell the customer)."""
    settings = Settings()
    watchdog = create_watchdog(settings, Database(settings), create_redis(settings))
    outcome = watchdog.resolve(order_id)
    if outcome.action == "flagged":
        click.echo(f"{order_id}: still NEEDS_ATTENTION, owes {', '.join(outcome.owed) or 'nothing'}")
        raise SystemExit(1)
    click.echo(f"{order_id}: {outcome.status}")


COMMANDS = (attention_group,)
