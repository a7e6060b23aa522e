"""ReserveStock and its compensation ReleaseStock, plus committing the stock of a confirmed order.

Reservation is one conditional UPDATE per line (`stock - reserved >= quantity`) in the same
transaction as the reservation rows: if any line is short, the whole reservation rolls back, and
no interleaving of concurrent sagas can oversell. The UPDATEs are the last statements before the
COMMIT, so a hot product's row is locked for as short a time as a reservation allows. The
reservation rows are the marker: a ReleaseStock that finds none writes RELEASED rows of quantity
0, which stop a late ReserveStock.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import redis
from pydantic import BaseModel

from ..db import Cursor, Database
from ..errors import InvalidStateTransition, OutOfStock, StepAlreadyCompensated
from ..feeds import write_availability
from ..manifest import Step
from ..models import Order, OrderItem, OrderStatus, Reservation, ReservationStatus
from ..repository import fetch_order, fetch_reservations, lock_order, log_step


class StockOutcome(BaseModel):
    order_id: str
    reservations: list[Reservation]


def reserve_stock(db: Database, cache: "redis.Redis", order_id: str) -> StockOutcome:
    lines: list[_OrderLine] = []
    try:
        with db.transaction() as cursor:
            lock_order(cursor, order_id)  # serialises this order's steps (a late ReleaseStock waits)
            lines = _order_lines(cursor, order_id)
            reservations = [line.reservation for line in lines if line.reservation is not None]
            if any(r.status is ReservationStatus.RELEASED for r in reservations):
                raise StepAlreadyCompensated(f"order {order_id}: ReleaseStock already ran; nothing reserved")
            if reservations:
                return StockOutcome(order_id=order_id, reservations=reservations)  # a repeat: nothing to do
            reservations = _reserve(cursor, order_id, [line.item for line in lines])
    except OutOfStock:
        # the cache may have promised units that are not there
        refresh_availability(db, cache, [line.item.product_id for line in lines])
        raise
    # What was available before this reservation, less it: read before the row lock was taken, so
    # a concurrent reservation may make it high (harmless: the edge's pre-check only rejects, and
    # the next OutOfStock writes the exact figure). Reading after the commit costs two round trips.
    write_availability(cache, {line.item.product_id: line.available - line.item.quantity for line in lines})
    return StockOutcome(order_id=order_id, reservations=reservations)


@dataclass(frozen=True)
class _OrderLine:
    item: OrderItem
    reservation: Reservation | None
    available: int


def _order_lines(cursor: Cursor, order_id: str) -> list[_OrderLine]:
    """The order's lines, with the reservation rows already written for them and the units the
    catalog had available, in one round trip (a consistent read: no inventory row is locked)."""
    cursor.execute(
        "SELECT i.product_id, i.quantity, i.unit_price, r.quantity AS reserved, r.status,"
        " p.stock - p.reserved AS available"
        " FROM order_items i"
        " LEFT JOIN inventory_reservations r ON r.order_id = i.order_id AND r.product_id = i.product_id"
        " LEFT JOIN inventory p ON p.product_id = i.product_id"
        " WHERE i.order_id = %s ORDER BY i.product_id",
        (order_id,),
    )
    return [
        _OrderLine(
            item=OrderItem(
                product_id=row["product_id"], quantity=row["quantity"], unit_price=row["unit_price"]
            ),
            reservation=None
            if row["status"] is None
            else Reservation(
                order_id=order_id,
                product_id=row["product_id"],
                quantity=row["reserved"],
                status=row["status"],
            ),
            available=int(row["available"] or 0),
        )
        for row in cursor.fetchall()
    ]


def _reserve(cursor: Cursor, order_id: str, items: list[OrderItem]) -> list[Reservation]:
    """Write the reservation rows and the log first, and take the units last: a hot product's row
    is then locked from its UPDATE to the COMMIT only, the least any reservation can hold it."""
    reservations = [
        Reservation(order_id=order_id, product_id=item.product_id, quantity=item.quantity,
                    status=ReservationStatus.RESERVED)
        for item in items
    ]  # fmt: skip
    cursor.executemany(
        "INSERT INTO inventory_reservations (order_id, product_id, quantity, status) VALUES (%s, %s, %s, %s)",
        [(r.order_id, r.product_id, r.quantity, r.status) for r in reservations],
    )
    log_step(cursor, order_id, Step.RESERVE_STOCK, "RESERVED", _lines(items))
    for item in items:  # in product_id order, so concurrent sagas lock rows in the same order
        cursor.execute(
            "UPDATE inventory SET reserved = reserved + %s WHERE product_id = %s AND stock - reserved >= %s",
            (item.quantity, item.product_id, item.quantity),
        )
        if cursor.rowcount == 0:
            raise OutOfStock(f"order {order_id}: fewer than {item.quantity} of {item.product_id} left")
    return reservations


def release_stock(db: Database, cache: "redis.Redis", order_id: str) -> StockOutcome:
    with db.transaction() as cursor:
        order = fetch_order(cursor, order_id, for_update=True)
        reservations = fetch_reservations(cursor, order_id)
        if not reservations:
            cursor.executemany(
                "INSERT INTO inventory_reservations (order_id, product_id, quantity, status)"
                " VALUES (%s, %s, 0, 'RELEASED')",
                [(order_id, item.product_id) for item in order.items],
            )
            log_step(cursor, order_id, Step.RELEASE_STOCK, "NOTHING_TO_UNDO")
        elif _release(cursor, order, reservations):
            log_step(cursor, order_id, Step.RELEASE_STOCK, "RELEASED", _lines(reservations))
        reservations = fetch_reservations(cursor, order_id)
        available = _available(cursor, [item.product_id for item in order.items])
    write_availability(cache, available)
    return StockOutcome(order_id=order_id, reservations=reservations)


def _release(cursor: Cursor, order: Order, reservations: list[Reservation]) -> int:
    """Give reserved units back, and restock the units of a confirmed order; count what changed."""
    if order.status is OrderStatus.CONFIRMED:
        raise InvalidStateTransition(
            f"order {order.order_id} is CONFIRMED: only the cancellation machine restocks it"
        )
    undo = {
        ReservationStatus.RESERVED: "UPDATE inventory SET reserved = reserved - %s WHERE product_id = %s",
        ReservationStatus.COMMITTED: "UPDATE inventory SET stock = stock + %s WHERE product_id = %s",
    }
    changed = 0
    for reservation in reservations:
        if reservation.status is ReservationStatus.RELEASED:
            continue
        cursor.execute(undo[reservation.status], (reservation.quantity, reservation.product_id))
        cursor.execute(
            "UPDATE inventory_reservations SET status = 'RELEASED' WHERE order_id = %s AND product_id = %s",
            (reservation.order_id, reservation.product_id),
        )
        changed += 1
    return changed


def commit_stock(cursor: Cursor, reservations: list[Reservation]) -> None:
    """The reserved units leave the stock for good (the last statements of ConfirmOrder's
    transaction: the inventory rows' UPDATEs come after everything else, as in ReserveStock)."""
    cursor.execute(
        "UPDATE inventory_reservations SET status = 'COMMITTED' WHERE order_id = %s AND status = 'RESERVED'",
        (reservations[0].order_id,),
    )
    for reservation in reservations:
        cursor.execute(
            "UPDATE inventory SET stock = stock - %s, reserved = reserved - %s WHERE product_id = %s",
            (reservation.quantity, reservation.quantity, reservation.product_id),
        )


def _available(cursor: Cursor, product_ids: list[str]) -> dict[str, int]:
    cursor.execute(
        "SELECT product_id, stock - reserved AS available FROM inventory WHERE product_id IN %s",
        (product_ids,),
    )
    return {row["product_id"]: int(row["available"]) for row in cursor.fetchall()}


def refresh_availability(db: Database, cache: "redis.Redis", product_ids: list[str]) -> None:
    """Write the committed availability of these products through to the Redis cache."""
    if product_ids:
        with db.transaction() as cursor:
            available = _available(cursor, product_ids)
        write_availability(cache, available)


class _Line(Protocol):
    @property
    def product_id(self) -> str: ...
    @property
    def quantity(self) -> int: ...


def _lines(lines: Iterable[_Line]) -> str:
    return ", ".join(f"{line.product_id}x{line.quantity}" for line in lines)
