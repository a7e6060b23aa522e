"""What the console reads from MySQL: every user's orders, one order with all it touched, and the
orders that need a person. Read-only: plain SELECTs (consistent reads, no locks), parameterised.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from order_saga.db import Cursor, Database
from order_saga.models import Order, OrderStatus, Payment, Reservation
from order_saga.repository import (
    ORDER_COLUMNS,
    fetch_order,
    fetch_payment,
    fetch_reservations,
    order_from_row,
)

PAGE_SIZE = 25
MAX_PAGE = 10_000
MAX_SEARCH = 128


@dataclass(frozen=True)
class OrderFilter:
    status: OrderStatus | None = None
    search: str = ""  # an order id (or its beginning) or a user id
    page: int = 1


@dataclass(frozen=True)
class OrderList:
    orders: list[Order]
    total: int
    page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


@dataclass(frozen=True)
class LogEntry:
    step: str
    status: str
    detail: str | None
    timestamp: datetime
    customer_id: str | None  # whom the edge acted for (CreateOrder, CancelOrder)
    client_id: str | None  # the app client that called


@dataclass(frozen=True)
class Notification:
    kind: str
    status: str  # SENDING (claimed, SES not yet answered) or SENT
    message_id: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class OrderDetail:
    order: Order
    payment: Payment | None
    reservations: list[Reservation]
    notifications: list[Notification]
    saga_log: list[LogEntry]


def _where(selection: OrderFilter) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if selection.status is not None:
        clauses.append("status = %s")
        params.append(selection.status.value)
    if selection.search:
        escaped = selection.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("(order_id LIKE %s OR user_id = %s)")
        params += [escaped + "%", selection.search]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_orders(database: Database, selection: OrderFilter) -> OrderList:
    """One page of orders, newest first."""
    where, params = _where(selection)
    with database.transaction() as cursor:
        cursor.execute(f"SELECT COUNT(*) AS n FROM orders{where}", params)  # noqa: S608 - fixed clauses
        row = cursor.fetchone()
        cursor.execute(
            f"SELECT {ORDER_COLUMNS} FROM orders{where}"  # noqa: S608 - fixed clauses
            " ORDER BY created_at DESC, order_id DESC LIMIT %s OFFSET %s",
            [*params, PAGE_SIZE, (selection.page - 1) * PAGE_SIZE],
        )
        orders = [order_from_row(row, []) for row in cursor.fetchall()]
    return OrderList(orders, int(row["n"]) if row else 0, selection.page)


def order_detail(database: Database, order_id: str) -> OrderDetail:
    """The order with its items, payment, reservations, notifications and saga log (OrderNotFound)."""
    with database.transaction() as cursor:
        order = fetch_order(cursor, order_id)
        return OrderDetail(
            order=order,
            payment=fetch_payment(cursor, order_id),
            reservations=fetch_reservations(cursor, order_id),
            notifications=_notifications(cursor, order_id),
            saga_log=saga_log(cursor, order_id),
        )


def saga_log(cursor: Cursor, order_id: str) -> list[LogEntry]:
    cursor.execute(
        "SELECT step, status, detail, `timestamp`, customer_id, client_id FROM saga_log"
        " WHERE saga_id = %s ORDER BY id",
        (order_id,),
    )
    return [LogEntry(**row) for row in cursor.fetchall()]


def _notifications(cursor: Cursor, order_id: str) -> list[Notification]:
    cursor.execute(
        "SELECT kind, status, message_id, sent_at FROM notifications WHERE order_id = %s ORDER BY sent_at",
        (order_id,),
    )
    return [Notification(**row) for row in cursor.fetchall()]


def order_status(database: Database, order_id: str) -> OrderStatus:
    with database.transaction() as cursor:
        return fetch_order(cursor, order_id).status


def needing_attention(database: Database, limit: int = 200) -> list[tuple[Order, list[LogEntry]]]:
    """NEEDS_ATTENTION orders, newest change first, each with its saga log."""
    with database.transaction() as cursor:
        cursor.execute(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE status = %s"  # noqa: S608 - fixed columns
            " ORDER BY updated_at DESC LIMIT %s",
            (OrderStatus.NEEDS_ATTENTION.value, limit),
        )
        orders = [order_from_row(row, []) for row in cursor.fetchall()]
        return [(order, saga_log(cursor, order.order_id)) for order in orders]
