"""The order's own steps: ConfirmOrder, and the ends of the compensation paths.

Each moves the order's status under its row lock, writes saga_log in the same transaction, and
publishes the new status once committed. Repeating a step that already took effect changes nothing.
"""

import contextlib
import json

import redis
from pydantic import BaseModel, ConfigDict, Field

from ..db import Cursor, Database
from ..errors import InvalidStateTransition, OrderCancelled
from ..feeds import publish_status
from ..models import Order, OrderStatus, PaymentStatus, ReservationStatus
from ..repository import fetch_order, fetch_payment, fetch_reservations, log_step
from .inventory import commit_stock

FAILURE_REASON_LENGTH = 500


class StepError(BaseModel):
    """What a Catch hands on (`ResultPath: $.error`): the error name and its cause."""

    model_config = ConfigDict(populate_by_name=True)

    error: str = Field(alias="Error")
    cause: str | None = Field(None, alias="Cause")

    def describe(self) -> str:
        """`Error: message`, taking the message out of a Lambda error's JSON cause."""
        message = self.cause or ""
        with contextlib.suppress(ValueError, AttributeError):  # a cause that is not a Lambda error's JSON
            message = json.loads(message).get("errorMessage", message)
        return f"{self.error}: {message}".rstrip(": ")[:FAILURE_REASON_LENGTH]


class OrderOutcome(BaseModel):
    order_id: str
    status: OrderStatus
    failure_reason: str | None = None

    @classmethod
    def of(cls, order: Order) -> "OrderOutcome":
        return cls(order_id=order.order_id, status=order.status, failure_reason=order.failure_reason)


def _set_status(cursor: Cursor, order: Order, status: OrderStatus, step: str, reason: str | None) -> None:
    cursor.execute(
        "UPDATE orders SET status = %s, failure_reason = COALESCE(%s, failure_reason), version = version + 1"
        " WHERE order_id = %s",
        (status, reason, order.order_id),
    )
    log_step(cursor, order.order_id, step, status, reason)


def _move(
    db: Database,
    cache: "redis.Redis",
    order_id: str,
    *,
    step: str,
    target: OrderStatus,
    allowed_from: set[OrderStatus],
    reason: str | None = None,
) -> OrderOutcome:
    """Move the order to `target` from one of `allowed_from`; at `target` already, do nothing."""
    with db.transaction() as cursor:
        order = fetch_order(cursor, order_id, for_update=True)
        if order.status is target:
            return OrderOutcome.of(order)
        if order.status not in allowed_from:
            raise InvalidStateTransition(
                f"order {order_id} is {order.status}; {step} cannot make it {target}"
            )
        _set_status(cursor, order, target, step, reason)
        moved = fetch_order(cursor, order_id)
    publish_status(cache, order_id, target)
    return OrderOutcome.of(moved)


def confirm_order(db: Database, cache: "redis.Redis", order_id: str) -> OrderOutcome:
    with db.transaction() as cursor:
        order = fetch_order(cursor, order_id, for_update=True)
        if order.status is OrderStatus.CONFIRMED:
            return OrderOutcome.of(order)
        if order.status is not OrderStatus.PENDING:
            raise InvalidStateTransition(
                f"order {order_id} is {order.status}; only a PENDING order is confirmed"
            )
        if order.cancel_requested:
            raise OrderCancelled(f"order {order_id}: the customer cancelled it before confirmation")
        payment = fetch_payment(cursor, order_id)
        reservations = fetch_reservations(cursor, order_id)
        if payment is None or payment.status is not PaymentStatus.SUCCESS:
            raise InvalidStateTransition(f"order {order_id}: no successful payment to confirm")
        if not reservations or any(r.status is not ReservationStatus.RESERVED for r in reservations):
            raise InvalidStateTransition(f"order {order_id}: its stock is not reserved")
        _set_status(cursor, order, OrderStatus.CONFIRMED, "ConfirmOrder", None)
        confirmed = fetch_order(cursor, order_id)
        commit_stock(cursor, reservations)  # last: the inventory rows stay locked until COMMIT only
    publish_status(cache, order_id, OrderStatus.CONFIRMED)
    return OrderOutcome.of(confirmed)


def mark_order_failed(
    db: Database, cache: "redis.Redis", order_id: str, error: StepError | None
) -> OrderOutcome:
    return _move(
        db,
        cache,
        order_id,
        step="MarkOrderFailed",
        target=OrderStatus.FAILED,
        allowed_from={OrderStatus.PENDING, OrderStatus.NEEDS_ATTENTION},  # a re-driven compensation ends
        reason=error.describe() if error else "failed",
    )


def mark_order_cancelled(db: Database, cache: "redis.Redis", order_id: str) -> OrderOutcome:
    return _move(
        db,
        cache,
        order_id,
        step="MarkOrderCancelled",
        target=OrderStatus.CANCELLED,
        allowed_from={OrderStatus.PENDING, OrderStatus.CANCELLING, OrderStatus.NEEDS_ATTENTION},
    )


def mark_needs_attention(
    db: Database, cache: "redis.Redis", order_id: str, error: StepError | None
) -> OrderOutcome:
    return _move(
        db,
        cache,
        order_id,
        step="MarkNeedsAttention",
        target=OrderStatus.NEEDS_ATTENTION,
        allowed_from={OrderStatus.PENDING, OrderStatus.CANCELLING},
        reason=error.describe() if error else "a compensation failed",
    )
