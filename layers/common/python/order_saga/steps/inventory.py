"""ReserveStock and its compensation ReleaseStock.

Each step is one stored procedure (migration 0007_stock_step_procedures), called in the step's
transaction: the CALL and the COMMIT are its two round trips. Reservation is one conditional
UPDATE per line (`stock - reserved >= quantity`) in the same transaction as the reservation rows:
if any line is short, the procedure signals OutOfStock and the whole reservation rolls back, and
no interleaving of concurrent sagas can oversell. The UPDATEs are the procedure's last writes, so
a hot product's row is locked from its UPDATE to the COMMIT only. The reservation rows are the
marker: a ReleaseStock that finds none writes RELEASED rows of quantity 0, which stop a late
ReserveStock.
"""

from typing import Any

import redis
from pydantic import BaseModel

from ..db import Cursor, Database
from ..errors import OutOfStock
from ..feeds import write_availability
from ..models import Reservation
from ..repository import call_step


class StockOutcome(BaseModel):
    order_id: str
    reservations: list[Reservation]


def reserve_stock(db: Database, cache: "redis.Redis", order_id: str) -> StockOutcome:
    try:
        with db.transaction() as cursor:
            rows = call_step(cursor, "saga_reserve_stock", order_id)
    except OutOfStock:
        # the cache may have promised units that are not there
        refresh_availability(db, cache, order_id)
        raise
    if rows and rows[0]["changed"]:  # a repeat changes nothing, the cache included
        write_availability(cache, _available(rows))
    return _outcome(order_id, rows)


def release_stock(db: Database, cache: "redis.Redis", order_id: str) -> StockOutcome:
    with db.transaction() as cursor:
        rows = call_step(cursor, "saga_release_stock", order_id)
    write_availability(cache, _available(rows))
    return _outcome(order_id, rows)


def _outcome(order_id: str, rows: list[dict[str, Any]]) -> StockOutcome:
    reservations = [
        Reservation(order_id=order_id, product_id=row["product_id"], quantity=row["quantity"],
                    status=row["status"])
        for row in rows
    ]  # fmt: skip
    return StockOutcome(order_id=order_id, reservations=reservations)


def _available(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The units each product has available (a product missing from the catalog has no figure)."""
    return {row["product_id"]: int(row["available"]) for row in rows if row["available"] is not None}


def refresh_availability(db: Database, cache: "redis.Redis", order_id: str) -> None:
    """Write the committed availability of the order's products through to the Redis cache."""
    with db.transaction() as cursor:
        available = _order_availability(cursor, order_id)
    write_availability(cache, available)


def _order_availability(cursor: Cursor, order_id: str) -> dict[str, int]:
    cursor.execute(
        "SELECT i.product_id, p.stock - p.reserved AS available"
        " FROM order_items i JOIN inventory p ON p.product_id = i.product_id WHERE i.order_id = %s",
        (order_id,),
    )
    return _available(list(cursor.fetchall()))
