"""The data the tests write: the tables they empty, the catalog they sell from, orders as the edge's
CreateOrder leaves them, and a query helper."""

import uuid
from decimal import Decimal
from typing import Any

from order_saga.db import Database

TABLES = ("saga_log", "inventory_reservations", "payments", "order_items", "orders", "inventory")

CATALOG = {"sku-1": ("9.99", 20), "sku-2": ("4.50", 5), "sku-3": ("100.00", 1)}


class OrderFactory:
    """Writes a PENDING order as the edge's CreateOrder leaves it (prices from the catalog)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def __call__(
        self,
        items: dict[str, int] | None = None,
        *,
        token: str = "tok_visa",
        email: str | None = "buyer@example.com",
        user_id: str = "user-1",
    ) -> str:
        order_id = str(uuid.uuid4())
        lines = items or {"sku-1": 2}
        prices = {p: Decimal(CATALOG[p][0]) for p in lines}
        total = sum(prices[p] * q for p, q in lines.items())
        order_row = (order_id, user_id, order_id, "0" * 64, total, email, token)
        with self.database.transaction() as cursor:
            cursor.execute(
                "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency,"
                " email, payment_token) VALUES (%s, %s, %s, %s, %s, 'EUR', %s, %s)",
                order_row,
            )
            cursor.executemany(
                "INSERT INTO order_items (order_id, product_id, quantity, unit_price)"
                " VALUES (%s, %s, %s, %s)",
                [(order_id, p, q, prices[p]) for p, q in lines.items()],
            )
        return order_id


def query(database: Database, sql: str, *args: object) -> list[dict[str, Any]]:
    with database.transaction() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def claim_notice(database: Database, order_id: str, kind: str, *, age_seconds: float, claimant: str) -> None:
    """A notice claimed `age_seconds` ago by a consumer that has not recorded it since."""
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO notifications (order_id, kind, status, claimant, claimed_at, sent_at)"
            " VALUES (%s, %s, 'SENDING', %s, CURRENT_TIMESTAMP(3) - INTERVAL %s MICROSECOND, NULL)",
            (order_id, kind, claimant, int(age_seconds * 1_000_000)),
        )
