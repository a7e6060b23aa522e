"""The order's own steps: ConfirmOrder, and the ends of the compensation paths.

Each moves the order's status under its row lock, writes saga_log in the same transaction, and
publishes the new status once committed. Repeating a step that already took effect changes nothing.
An order that does not complete gets a customer-friendly `failure_reason` and a stable
`reason_code` (order_saga.reasons); the raw error goes to saga_log only, for operators.
A NEEDS_ATTENTION order records which compensations it still owes, read from the data itself;
an order that ended FAILED or CANCELLED and owes nothing is never flagged.
"""

import contextlib
import json

import redis
from pydantic import BaseModel, ConfigDict, Field

from ..db import Cursor, Database
from ..errors import InvalidStateTransition, OrderAlreadySettled
from ..feeds import publish_status
from ..manifest import STATE_MACHINE_STEPS, Step
from ..models import Order, OrderStatus, PaymentStatus, ReservationStatus
from ..reasons import ReasonCode, reason_code, sentence
from ..repository import (
    call_step,
    fetch_order,
    fetch_payment,
    fetch_reservations,
    log_step,
    logged,
    owed_from_column,
)

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
    reason_code: str | None = None
    owed_compensations: list[str] = []

    @classmethod
    def of(cls, order: Order) -> "OrderOutcome":
        return cls(
            order_id=order.order_id,
            status=order.status,
            failure_reason=order.failure_reason,
            reason_code=order.reason_code,
            owed_compensations=sorted(order.owed_compensations),
        )


def owed_compensations(cursor: Cursor, order: Order) -> set[str]:
    """The compensations not done yet, read from the data (payments row, reservations), not from
    what an execution believes: no refund or decline recorded, or units still held."""
    payment = fetch_payment(cursor, order.order_id)
    reservations = fetch_reservations(cursor, order.order_id)
    owed: set[str] = set()
    if payment is None or payment.status in {PaymentStatus.SUCCESS, PaymentStatus.CHARGING}:
        owed.add(Step.REFUND_PAYMENT)
    if not reservations or any(r.status is not ReservationStatus.RELEASED for r in reservations):
        owed.add(Step.RELEASE_STOCK)
    return owed


def never_started(cursor: Cursor, order: Order) -> bool:
    """Whether the order's saga left no marker at all: PENDING, no payments row, no reservation,
    no saga_log entry of any step. Such an order is owed a start, never a compensation."""
    return (
        order.status is OrderStatus.PENDING
        and fetch_payment(cursor, order.order_id) is None
        and not fetch_reservations(cursor, order.order_id)
        and not logged(cursor, order.order_id, STATE_MACHINE_STEPS)
    )


def _set_status(
    cursor: Cursor,
    order: Order,
    status: OrderStatus,
    step: str,
    *,
    code: ReasonCode | None = None,
    detail: str | None = None,
    owed: set[str] | None = None,
) -> None:
    """The new status, with the customer's sentence and code; `detail` (operators' only) goes to saga_log."""
    reason = sentence(cursor, order.order_id, code) if code else None
    cursor.execute(
        "UPDATE orders SET status = %s, failure_reason = COALESCE(%s, failure_reason),"
        " reason_code = COALESCE(%s, reason_code), owed_compensations = %s, version = version + 1"
        " WHERE order_id = %s",
        (status, reason, code, ",".join(sorted(owed or ())), order.order_id),
    )
    log_step(cursor, order.order_id, step, status, detail)


def _move(
    db: Database,
    cache: "redis.Redis",
    order_id: str,
    *,
    step: str,
    target: OrderStatus,
    allowed_from: set[OrderStatus],
    code: ReasonCode,
    detail: str | None = None,
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
        owed = owed_compensations(cursor, order)
        if owed and target is not OrderStatus.NEEDS_ATTENTION:
            # No order ends FAILED or CANCELLED while it still holds money or stock.
            raise InvalidStateTransition(f"order {order_id} still owes {', '.join(sorted(owed))}")
        if not owed and order.status in {OrderStatus.FAILED, OrderStatus.CANCELLED}:
            # Flagging it would hand a person a finished order (and a re-drive could end it FAILED).
            raise OrderAlreadySettled(f"order {order_id} is {order.status} and owes nothing; {step} refused")
        if owed:
            detail = f"{detail}; still owed: {', '.join(sorted(owed))}"
        _set_status(cursor, order, target, step, code=code, detail=detail, owed=owed)
        moved = fetch_order(cursor, order_id)
    publish_status(cache, order_id, target)
    return OrderOutcome.of(moved)


def confirm_order(db: Database, cache: "redis.Redis", order_id: str) -> OrderOutcome:
    """Confirm a paid, reserved PENDING order, and take its reserved units out of the stock, in one
    stored procedure (the inventory rows last). A retry after its own commit (its answer lost)
    answers CONFIRMED again, even when the customer has since cancelled: that cancellation is the
    cancellation machine's, and the saga goes on to its confirmation notice, which the consumer
    records STALE. Refused: an order not PENDING (OrderNotFound, InvalidStateTransition), one the
    customer cancelled (OrderCancelled), one without a successful payment or reserved stock."""
    with db.transaction() as cursor:
        (row,) = call_step(cursor, "saga_confirm_order", order_id)
    outcome = OrderOutcome(
        order_id=order_id,
        status=row["status"],
        failure_reason=row["failure_reason"],
        reason_code=row["reason_code"],
        owed_compensations=sorted(owed_from_column(row["owed_compensations"])),
    )
    if row["changed"]:  # a repeat publishes nothing
        publish_status(cache, order_id, OrderStatus.CONFIRMED)
    return outcome


def mark_order_failed(
    db: Database, cache: "redis.Redis", order_id: str, error: StepError | None
) -> OrderOutcome:
    return _move(
        db,
        cache,
        order_id,
        step=Step.MARK_ORDER_FAILED,
        target=OrderStatus.FAILED,
        allowed_from={OrderStatus.PENDING, OrderStatus.NEEDS_ATTENTION},  # a re-driven compensation ends
        code=reason_code(error.error if error else None),
        detail=error.describe() if error else None,
    )


def mark_order_cancelled(db: Database, cache: "redis.Redis", order_id: str) -> OrderOutcome:
    return _move(
        db,
        cache,
        order_id,
        step=Step.MARK_ORDER_CANCELLED,
        target=OrderStatus.CANCELLED,
        allowed_from={OrderStatus.PENDING, OrderStatus.CANCELLING, OrderStatus.NEEDS_ATTENTION},
        code=ReasonCode.CANCELLED_BY_CUSTOMER,
    )


def mark_needs_attention(
    db: Database, cache: "redis.Redis", order_id: str, error: StepError | None
) -> OrderOutcome:
    return _move(
        db,
        cache,
        order_id,
        step=Step.MARK_NEEDS_ATTENTION,
        target=OrderStatus.NEEDS_ATTENTION,
        # FAILED or CANCELLED too: the saga watchdog flags a finished order still holding money or stock.
        allowed_from={OrderStatus.PENDING, OrderStatus.CANCELLING, OrderStatus.FAILED, OrderStatus.CANCELLED},
        code=ReasonCode.UNDER_REVIEW,
        detail=error.describe() if error else "a compensation failed",
    )
