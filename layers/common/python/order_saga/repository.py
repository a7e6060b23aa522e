"""Reading orders, their items, payments and reservations inside a caller's transaction, and
running the steps that are stored procedures in it."""

from collections.abc import Sequence
from typing import Any, Literal

import pymysql

from .db import ER_SIGNAL_EXCEPTION, Cursor
from .errors import InvalidStateTransition, OrderCancelled, OrderNotFound, OutOfStock, StepAlreadyCompensated
from .models import Actor, Order, OrderItem, Payment, Reservation

# The steps that run as one stored procedure (migration 0007_stock_step_procedures).
StepProcedure = Literal["saga_reserve_stock", "saga_release_stock", "saga_confirm_order"]
# What those procedures refuse: their SIGNAL's message starts with the error's class name.
REFUSALS: dict[str, type[Exception]] = {
    error.__name__: error
    for error in (OrderNotFound, OutOfStock, StepAlreadyCompensated, InvalidStateTransition, OrderCancelled)
}

ORDER_COLUMNS = (
    "order_id, user_id, idempotency_key, status, total, currency, email, payment_token, failure_reason,"
    " reason_code, owed_compensations, execution_arn, cancellation_execution_arn, cancel_requested,"
    " version, created_at, updated_at"
)


def owed_from_column(owed: str | set[str]) -> frozenset[str]:
    """The compensations an order owes, from its SET column: "RefundPayment,ReleaseStock" (or a set)."""
    return frozenset(owed.split(",") if isinstance(owed, str) else owed) - {""}


def order_from_row(row: dict[str, Any], items: list[dict[str, Any]]) -> Order:
    return Order(
        **row
        | {
            "cancel_requested": bool(row["cancel_requested"]),
            "owed_compensations": owed_from_column(row["owed_compensations"]),
        },
        items=tuple(OrderItem(**item) for item in items),
    )


def fetch_order(cursor: Cursor, order_id: str, *, for_update: bool = False) -> Order:
    """The order with its items; `for_update` locks its row, which serialises the saga's steps."""
    lock = " FOR UPDATE" if for_update else ""
    cursor.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = %s{lock}", (order_id,))  # noqa: S608
    row = cursor.fetchone()
    if row is None:
        raise OrderNotFound(f"order {order_id} does not exist")
    cursor.execute(
        "SELECT product_id, quantity, unit_price FROM order_items WHERE order_id = %s ORDER BY product_id",
        (order_id,),
    )
    return order_from_row(row, list(cursor.fetchall()))


def call_step(cursor: Cursor, procedure: StepProcedure, order_id: str) -> list[dict[str, Any]]:
    """Run a step's stored procedure in the caller's transaction (one round trip); return the rows
    it answers. A refusal it signals (`<error class>: <detail>`) is raised as that typed error, and
    the caller's transaction rolls back whatever the procedure wrote before it."""
    try:
        cursor.execute(f"CALL {procedure}(%s)", (order_id,))
    except pymysql.err.OperationalError as exc:
        name, _, detail = str(exc.args[-1]).partition(": ")
        if exc.args[0] != ER_SIGNAL_EXCEPTION or name not in REFUSALS:
            raise
        raise REFUSALS[name](detail) from exc
    rows = list(cursor.fetchall())
    while cursor.nextset():  # the CALL's own status, already read with the rows
        pass
    return rows


def fetch_payment(cursor: Cursor, order_id: str) -> Payment | None:
    cursor.execute(
        "SELECT payment_id, order_id, amount, currency, idempotency_key, status, gateway_response,"
        " gateway_reference,"
        " created_at, updated_at FROM payments WHERE order_id = %s",
        (order_id,),
    )
    row = cursor.fetchone()
    return Payment(**row) if row else None


def fetch_reservations(cursor: Cursor, order_id: str) -> list[Reservation]:
    cursor.execute(
        "SELECT order_id, product_id, quantity, status FROM inventory_reservations"
        " WHERE order_id = %s ORDER BY product_id",
        (order_id,),
    )
    return [Reservation(**row) for row in cursor.fetchall()]


def log_step(
    cursor: Cursor,
    saga_id: str,
    step: str,
    status: str,
    detail: str | None = None,
    *,
    actor: Actor | None = None,
) -> None:
    """Append to saga_log inside the step's own transaction, so the log never disagrees with the
    data; an entry the edge writes for a caller names whom it acted for and the calling client."""
    cursor.execute(
        "INSERT INTO saga_log (saga_id, step, status, detail, customer_id, client_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (saga_id, step, status, detail, actor and actor.customer_id, actor and actor.client_id),
    )


def logged(cursor: Cursor, saga_id: str, steps: Sequence[str], status: str | None = None) -> bool:
    """Whether saga_log holds an entry of one of `steps` for the order (with `status`, if given)."""
    cursor.execute(
        f"SELECT 1 FROM saga_log WHERE saga_id = %s AND step IN ({placeholders(steps)})"  # noqa: S608
        " AND status = COALESCE(%s, status) LIMIT 1",
        (saga_id, *steps, status),
    )
    return cursor.fetchone() is not None


def placeholders(values: Sequence[object]) -> str:
    """`%s, %s, ...` for an IN list: the values themselves always travel as parameters."""
    return ", ".join(["%s"] * len(values))
