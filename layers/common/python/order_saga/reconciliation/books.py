"""The books as MySQL holds them, read in ONE transaction with a consistent snapshot, so the
tables agree with each other (the gateway's ledger is read beside them, `ledger.py`)."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from order_saga.db import Database
from order_saga.models import OrderStatus


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    status: OrderStatus
    total: Decimal
    email: str | None
    age_seconds: float  # since the last change, by the database clock
    lines: dict[str, int]  # product_id -> quantity


@dataclass(frozen=True)
class PaymentRow:
    status: str  # SUCCESS, FAILED, REFUNDED (and whatever states a newer schema adds)
    amount: Decimal
    reference: str | None


@dataclass(frozen=True)
class ReservationRow:
    product_id: str
    quantity: int
    status: str  # RESERVED, RELEASED, COMMITTED


@dataclass(frozen=True)
class StockRow:
    stock: int
    reserved: int


@dataclass
class Books:
    """Everything MySQL says, indexed by order (and by product for the inventory)."""

    orders: dict[str, OrderRow] = field(default_factory=dict)
    payments: dict[str, PaymentRow] = field(default_factory=dict)
    reservations: dict[str, list[ReservationRow]] = field(default_factory=lambda: defaultdict(list))
    inventory: dict[str, StockRow] = field(default_factory=dict)
    notifications: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))  # SENT only
    saga_log: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    # Per product, over every order (not only those in scope): RESERVED and COMMITTED units.
    live_reserved: dict[str, int] = field(default_factory=dict)
    committed_units: dict[str, int] = field(default_factory=dict)
    # The start of the orders' window in Unix seconds, as the database reads it (None: all orders).
    since_unix: float | None = None

    def stock_baseline(self) -> dict[str, int]:
        """stock + committed units per product: constant while only sagas move stock (see
        docs/reliability.md), so a snapshot of it taken before a run is what the run must keep."""
        return {
            product: row.stock + self.committed_units.get(product, 0)
            for product, row in self.inventory.items()
        }


# The orders in scope are those created since %(since)s; the per-order queries read only theirs.
QUERIES = {
    "items": "SELECT order_id, product_id, quantity FROM order_items"
    " WHERE order_id IN (SELECT order_id FROM orders WHERE created_at >= %(since)s)",
    "orders": "SELECT order_id, status, total, email,"
    " TIMESTAMPDIFF(MICROSECOND, updated_at, CURRENT_TIMESTAMP(3)) / 1e6 AS age"
    " FROM orders WHERE created_at >= %(since)s",
    "payments": "SELECT order_id, status, amount, gateway_reference FROM payments"
    " WHERE order_id IN (SELECT order_id FROM orders WHERE created_at >= %(since)s)",
    "reservations": "SELECT order_id, product_id, quantity, status FROM inventory_reservations"
    " WHERE order_id IN (SELECT order_id FROM orders WHERE created_at >= %(since)s)",
    "notifications": "SELECT order_id, kind, COUNT(*) AS n FROM notifications WHERE status = 'SENT'"
    " AND order_id IN (SELECT order_id FROM orders WHERE created_at >= %(since)s)"
    " GROUP BY order_id, kind",
    "saga_log": "SELECT saga_id, step, status FROM saga_log"
    " WHERE saga_id IN (SELECT order_id FROM orders WHERE created_at >= %(since)s) ORDER BY id",
    "unit_totals": "SELECT product_id, status, SUM(quantity) AS units FROM inventory_reservations"
    " WHERE status IN ('RESERVED', 'COMMITTED') GROUP BY product_id, status",
    "inventory": "SELECT product_id, stock, reserved FROM inventory",
}


def _unix_seconds(cursor: Any, moment: datetime | None) -> float | None:
    """`moment` (as the database stores times, in its session's time zone) in Unix seconds."""
    if moment is None:
        return None
    cursor.execute("SELECT UNIX_TIMESTAMP(%s) AS unix", (moment,))
    return float(cursor.fetchone()["unix"])


def read_books(database: Database, since: datetime | None = None) -> Books:
    """One consistent snapshot of every table the saga writes, for the orders created since
    `since` (all by default). The inventory and its reservation totals are always read whole."""
    books = Books()
    scope = {"since": since or datetime(1970, 1, 2)}
    with database.transaction() as cursor:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        books.since_unix = _unix_seconds(cursor, since)

        def rows(name: str) -> list[dict[str, Any]]:
            cursor.execute(QUERIES[name], scope)
            return list(cursor.fetchall())

        lines: dict[str, dict[str, int]] = defaultdict(dict)
        for row in rows("items"):
            lines[row["order_id"]][row["product_id"]] = int(row["quantity"])
        for row in rows("orders"):
            books.orders[row["order_id"]] = OrderRow(
                row["order_id"],
                OrderStatus(row["status"]),
                Decimal(row["total"]),
                row["email"],
                float(row["age"]),
                lines.get(row["order_id"], {}),
            )
        for row in rows("payments"):
            books.payments[row["order_id"]] = PaymentRow(
                row["status"], Decimal(row["amount"]), row["gateway_reference"]
            )
        for row in rows("reservations"):
            books.reservations[row["order_id"]].append(
                ReservationRow(row["product_id"], int(row["quantity"]), row["status"])
            )
        for row in rows("notifications"):
            books.notifications[row["order_id"]][row["kind"]] = int(row["n"])
        for row in rows("saga_log"):
            books.saga_log[row["saga_id"]].append((row["step"], row["status"]))
        for row in rows("unit_totals"):
            totals = books.live_reserved if row["status"] == "RESERVED" else books.committed_units
            totals[row["product_id"]] = int(row["units"])
        for row in rows("inventory"):
            books.inventory[row["product_id"]] = StockRow(int(row["stock"]), int(row["reserved"]))
    return books
