"""ProcessPayment and its compensation RefundPayment, over the payments table and the gateway.

The payments row is the marker both steps read, and it is written BEFORE the gateway is called:
ProcessPayment first commits a CHARGING row (the intent, with the gateway idempotency key), then
charges, then records SUCCESS or FAILED. So a charge whose answer was lost (the database went
down, the function was killed, the gateway answered after the timeout) always leaves a row, and
a retried ProcessPayment on a CHARGING row charges again under the same key: the gateway answers
with the first charge. REFUNDED means the compensation ran.

RefundPayment never concludes "nothing was charged" from our own record: for a SUCCESS or
CHARGING row it asks the gateway to refund by the idempotency key, and the gateway (which holds
the truth) refunds the charge or answers "nothing to refund", moving no money. With no row at
all, it first commits a REFUNDED marker (amount 0) under the order's lock, so a late ProcessPayment
stops before the gateway, and still settles by key (a row-less charge of older code).
"""

import json
import uuid
from decimal import Decimal

from pydantic import BaseModel

from ..db import Cursor, Database
from ..errors import InvalidStateTransition, OrderCancelled, PaymentDeclined, StepAlreadyCompensated
from ..manifest import Step
from ..models import Order, OrderStatus, Payment, PaymentStatus
from ..observability import logger
from ..payment_gateway import GatewayResult, PaymentGateway
from ..repository import fetch_order, fetch_payment, log_step

NOTHING_CHARGED = '{"note": "nothing was charged; this row stops a late ProcessPayment"}'


class PaymentOutcome(BaseModel):
    order_id: str
    payment_id: str
    status: PaymentStatus
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, payment: Payment) -> "PaymentOutcome":
        return cls(
            order_id=payment.order_id,
            payment_id=payment.payment_id,
            status=payment.status,
            amount=payment.amount,
            currency=payment.currency,
        )


def _settled(payment: Payment) -> PaymentOutcome:
    """The outcome recorded for the order; a repeated ProcessPayment answers with it and does nothing."""
    if payment.status is PaymentStatus.REFUNDED:
        raise StepAlreadyCompensated(f"order {payment.order_id}: RefundPayment already ran")
    if payment.status is PaymentStatus.FAILED:
        decline = json.loads(payment.gateway_response or "{}").get("decline_code") or "declined"
        raise PaymentDeclined(f"order {payment.order_id}: payment declined ({decline})")
    return PaymentOutcome.of(payment)


def process_payment(db: Database, gateway: PaymentGateway, order_id: str) -> PaymentOutcome:
    with db.transaction() as cursor:
        order = fetch_order(cursor, order_id, for_update=True)
        payment = fetch_payment(cursor, order_id)
        if payment is None:
            if order.cancel_requested:
                raise OrderCancelled(f"order {order_id}: cancelled before payment")
            _insert_intent(cursor, order)
        elif payment.status is not PaymentStatus.CHARGING:
            return _settled(payment)
    # No lock is held over the gateway call: its idempotency key (the order_id) makes a repeat harmless.
    result = gateway.charge(
        order_id=order_id, amount=order.total, currency=order.currency, token=order.payment_token
    )
    payment = _record_charge(db, order_id, result)
    if payment.status is PaymentStatus.REFUNDED and result.approved and payment.amount == 0:
        # The gateway charged after RefundPayment was told "nothing to refund" (a gateway that does
        # not void the key). Record the truth, then give the money back; if that refund fails, the
        # SUCCESS row of an order that did not complete is what the saga watchdog refunds.
        _record_late_charge(db, order_id, result)
        refund_payment(db, gateway, order_id)
    return _settled(payment)


def _insert_intent(cursor: Cursor, order: Order) -> None:
    """The committed intent: the row exists, with its idempotency key, before the gateway is called."""
    cursor.execute(
        "INSERT INTO payments (payment_id, order_id, amount, currency, idempotency_key, status)"
        " VALUES (%s, %s, %s, %s, %s, 'CHARGING')",
        (str(uuid.uuid4()), order.order_id, order.total, order.currency, order.order_id),
    )
    log_step(cursor, order.order_id, Step.PROCESS_PAYMENT, PaymentStatus.CHARGING)


def _record_charge(db: Database, order_id: str, result: GatewayResult) -> Payment:
    """Store the gateway's outcome on the CHARGING row; a row settled meanwhile is left as it is."""
    status = PaymentStatus.SUCCESS if result.approved else PaymentStatus.FAILED
    with db.transaction() as cursor:
        fetch_order(cursor, order_id, for_update=True)
        cursor.execute(
            "UPDATE payments SET status = %s, gateway_response = %s, gateway_reference = %s"
            " WHERE order_id = %s AND status = 'CHARGING'",
            (status, result.response_text, result.reference, order_id),
        )
        if cursor.rowcount:
            detail = result.reference or result.response.get("decline_code")
            log_step(
                cursor, order_id, Step.PROCESS_PAYMENT, "SUCCEEDED" if result.approved else "DECLINED", detail
            )
        recorded = fetch_payment(cursor, order_id)
    assert recorded is not None
    return recorded


def _record_late_charge(db: Database, order_id: str, result: GatewayResult) -> None:
    with db.transaction() as cursor:
        order = fetch_order(cursor, order_id, for_update=True)
        cursor.execute(
            "UPDATE payments SET status = 'SUCCESS', amount = %s, gateway_response = %s,"
            " gateway_reference = %s WHERE order_id = %s AND status = 'REFUNDED' AND amount = 0",
            (order.total, result.response_text, result.reference, order_id),
        )
        if cursor.rowcount:
            log_step(cursor, order_id, Step.PROCESS_PAYMENT, "LATE_CHARGE", result.reference)
    logger.warning("a charge landed after its compensation; refunding it", extra={"order_id": order_id})


def refund_payment(db: Database, gateway: PaymentGateway, order_id: str) -> PaymentOutcome:
    with db.transaction() as cursor:
        order = fetch_order(cursor, order_id, for_update=True)
        payment = fetch_payment(cursor, order_id)
        if payment is None:
            cursor.execute(
                "INSERT INTO payments (payment_id, order_id, amount, currency, idempotency_key, status,"
                " gateway_response) VALUES (%s, %s, 0, %s, %s, 'REFUNDED', %s)",
                (str(uuid.uuid4()), order_id, order.currency, order_id, NOTHING_CHARGED),
            )
            log_step(cursor, order_id, Step.REFUND_PAYMENT, "NOTHING_TO_UNDO")
        elif payment.status in {PaymentStatus.REFUNDED, PaymentStatus.FAILED}:
            return PaymentOutcome.of(payment)  # already refunded, or declined: no money to give back
        elif order.status is OrderStatus.CONFIRMED:
            raise InvalidStateTransition(
                f"order {order_id} is CONFIRMED: only the cancellation machine refunds it"
            )
    result = gateway.refund(order_id=order_id, amount=order.total, currency=order.currency)
    with db.transaction() as cursor:
        fetch_order(cursor, order_id, for_update=True)
        _record_refund(cursor, order, result)
        refunded = fetch_payment(cursor, order_id)
    assert refunded is not None
    return PaymentOutcome.of(refunded)


def _record_refund(cursor: Cursor, order: Order, result: GatewayResult) -> None:
    """REFUNDED with the gateway's answer. `nothing to refund` leaves amount 0: no money moved."""
    amount = Decimal(0) if result.nothing_to_refund else order.total
    cursor.execute(
        # amount first: MySQL evaluates the assignments left to right, on the updated values.
        "UPDATE payments SET amount = IF(status = 'SUCCESS', amount, %s), status = 'REFUNDED',"
        " gateway_response = %s WHERE order_id = %s AND (status IN ('SUCCESS', 'CHARGING') OR"
        " (status = 'REFUNDED' AND amount = 0 AND %s > 0))",
        (amount, result.response_text, order.order_id, amount),
    )
    if cursor.rowcount:
        status = "NOTHING_TO_REFUND" if result.nothing_to_refund else "REFUNDED"
        log_step(cursor, order.order_id, Step.REFUND_PAYMENT, status, result.reference)
