"""The books as the auditor reads them: one consistent snapshot of MySQL, plus the outside parties.

MySQL is read in ONE transaction with a consistent snapshot, so the tables agree with each other.
The gateway's ledger, the executions and the attention records are read through small interfaces
(`sources.py`), because in production each belongs to another system.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from ..db import Database
from ..models import OrderStatus


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
    notifications: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    saga_log: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))

    def committed(self) -> dict[str, int]:
        """Units per product that left the stock for good (COMMITTED reservations)."""
        units: dict[str, int] = dict.fromkeys(self.inventory, 0)
        for rows in self.reservations.values():
            for row in rows:
                if row.status == "COMMITTED":
                    units[row.product_id] = units.get(row.product_id, 0) + row.quantity
        return units

    def stock_baseline(self) -> dict[str, int]:
        """stock + committed units per product: constant while only sagas move stock (see
        docs/reliability.md), so a snapshot of it taken before a run is what the run must keep."""
        committed = self.committed()
        return {product: row.stock + committed.get(product, 0) for product, row in self.inventory.items()}


def read_books(database: Database) -> Books:
    """One consistent snapshot of every table the saga writes."""
    books = Books()
    with database.transaction() as cursor:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cursor.execute("SELECT order_id, product_id, quantity FROM order_items")
        lines: dict[str, dict[str, int]] = defaultdict(dict)
        for row in cursor.fetchall():
            lines[row["order_id"]][row["product_id"]] = int(row["quantity"])
        cursor.execute(
            "SELECT order_id, status, total, email,"
            " TIMESTAMPDIFF(MICROSECOND, updated_at, CURRENT_TIMESTAMP(3)) / 1e6 AS age FROM orders"
        )
        for row in cursor.fetchall():
            books.orders[row["order_id"]] = OrderRow(
                row["order_id"],
                OrderStatus(row["status"]),
                Decimal(row["total"]),
                row["email"],
                float(row["age"]),
                lines.get(row["order_id"], {}),
            )
        cursor.execute("SELECT order_id, status, amount, gateway_reference FROM payments")
        for row in cursor.fetchall():
            books.payments[row["order_id"]] = PaymentRow(
                row["status"], Decimal(row["amount"]), row["gateway_reference"]
            )
        cursor.execute("SELECT order_id, product_id, quantity, status FROM inventory_reservations")
        for row in cursor.fetchall():
            books.reservations[row["order_id"]].append(
                ReservationRow(row["product_id"], int(row["quantity"]), row["status"])
            )
        cursor.execute("SELECT product_id, stock, reserved FROM inventory")
        for row in cursor.fetchall():
            books.inventory[row["product_id"]] = StockRow(int(row["stock"]), int(row["reserved"]))
        cursor.execute("SELECT order_id, kind, COUNT(*) AS n FROM notifications GROUP BY order_id, kind")
        for row in cursor.fetchall():
            books.notifications[row["order_id"]][row["kind"]] = int(row["n"])
        cursor.execute("SELECT saga_id, step, status FROM saga_log ORDER BY id")
        for row in cursor.fetchall():
            books.saga_log[row["saga_id"]].append((row["step"], row["status"]))
    return books
