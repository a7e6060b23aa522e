"""Reading orders, their items, payments and reservations inside a caller's transaction."""

from collections.abc import Sequence
from typing import Any

from .db import Cursor
from .errors import OrderNotFound
from .models import Actor, Order, OrderItem, Payment, Reservation

ORDER_COLUMNS = (
    "order_id, user_id, idempotency_key, status, total, currency, email, payment_token, failure_reason,"
    " reason_code, owed_compensations, execution_arn, cancellation_execution_arn, cancel_requested,"
    " version, created_at, updated_at"
)


def order_from_row(row: dict[str, Any], items: list[dict[str, Any]]) -> Order:
    owed = row["owed_compensations"]  # a SET column: "RefundPayment,ReleaseStock" (or a set)
    return Order(
        **row
        | {
            "cancel_requested": bool(row["cancel_requested"]),
            "owed_compensations": frozenset(owed.split(",") if isinstance(owed, str) else owed) - {""},
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


def lock_order(cursor: Cursor, order_id: str) -> None:
    """Lock the order's row (serialising its saga's steps) without reading it."""
    cursor.execute("SELECT 1 FROM orders WHERE order_id = %s FOR UPDATE", (order_id,))
    if cursor.fetchone() is None:
        raise OrderNotFound(f"order {order_id} does not exist")


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
