"""ProcessPayment and its compensation RefundPayment, over the payments table and the gateway.

The payments row is the marker both steps read: SUCCESS/FAILED is the charge's outcome, REFUNDED
means the compensation ran. A RefundPayment that finds no charge still writes a REFUNDED row
(amount 0, no gateway reference), and the unique key on payments.order_id then stops a late
ProcessPayment before it reaches the gateway.
"""

import json
import uuid
from decimal import Decimal

from pydantic import BaseModel

from ..db import Cursor, Database
from ..errors import InvalidStateTransition, OrderCancelled, PaymentDeclined, StepAlreadyCompensated
from ..models import Order, OrderStatus, Payment, PaymentStatus
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
        raise StepAlreadyCompensated(f"order {payment.order_id}: RefundPayment already ran; nothing charged")
    if payment.status is PaymentStatus.FAILED:
        decline = json.loads(payment.gateway_response or "{}").get("decline_code") or "declined"
        raise PaymentDeclined(f"order {payment.order_id}: payment declined ({decline})")
    return PaymentOutcome.of(payment)


def process_payment(db: Database, gateway: PaymentGateway, order_id: str) -> PaymentOutcome:
    with db.transaction() as cursor:
        order = fetch_order(cursor, order_id, for_update=True)
        settled = fetch_payment(cursor, order_id)
    if settled is not None:
        return _settled(settled)
    if order.cancel_requested:
        raise OrderCancelled(f"order {order_id}: cancelled before payment")
    # No lock is held over the gateway call: its idempotency key (the order_id) makes a repeat harmless.
    result = gateway.charge(
        order_id=order_id, amount=order.total, currency=order.currency, token=order.payment_token
    )
    payment, ours = _record_charge(db, order, result)
    if not ours and payment.status is PaymentStatus.REFUNDED and result.approved:
        # RefundPayment ran while the gateway was charging: give the money back at once.
        gateway.refund(
            order_id=order_id, reference=str(result.reference), amount=order.total, currency=order.currency
        )
    return _settled(payment)


def _record_charge(db: Database, order: Order, result: GatewayResult) -> tuple[Payment, bool]:
    """Store the gateway's outcome unless another call stored one first; say whether it was ours."""
    with db.transaction() as cursor:
        fetch_order(cursor, order.order_id, for_update=True)
        settled = fetch_payment(cursor, order.order_id)
        if settled is not None:
            return settled, False
        _insert_payment(cursor, order, result)
        recorded = fetch_payment(cursor, order.order_id)
    assert recorded is not None
    return recorded, True


def _insert_payment(cursor: Cursor, order: Order, result: GatewayResult) -> None:
    status = PaymentStatus.SUCCESS if result.approved else PaymentStatus.FAILED
    cursor.execute(
        "INSERT INTO payments (payment_id, order_id, amount, currency, status, gateway_response,"
        " gateway_reference) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            str(uuid.uuid4()),
            order.order_id,
            order.total,
            order.currency,
            status,
            result.response_text,
            result.reference,
        ),
    )
    log_step(
        cursor,
        order.order_id,
        "ProcessPayment",
        "SUCCEEDED" if result.approved else "DECLINED",
        result.reference,
    )


def refund_payment(db: Database, gateway: PaymentGateway, order_id: str) -> PaymentOutcome:
    with db.transaction() as cursor:
        order = fetch_order(cursor, order_id, for_update=True)
        payment = fetch_payment(cursor, order_id)
        if payment is None:
            cursor.execute(
                "INSERT INTO payments (payment_id, order_id, amount, currency, status, gateway_response)"
                " VALUES (%s, %s, 0, %s, 'REFUNDED', %s)",
                (str(uuid.uuid4()), order_id, order.currency, NOTHING_CHARGED),
            )
            log_step(cursor, order_id, "RefundPayment", "NOTHING_TO_UNDO")
            payment = fetch_payment(cursor, order_id)
            assert payment is not None
            return PaymentOutcome.of(payment)
    if payment.status is not PaymentStatus.SUCCESS:
        return PaymentOutcome.of(payment)  # already refunded, or declined: no money to give back
    if order.status is OrderStatus.CONFIRMED:
        raise InvalidStateTransition(
            f"order {order_id} is CONFIRMED: only the cancellation machine refunds it"
        )
    result = gateway.refund(
        order_id=order_id,
        reference=str(payment.gateway_reference),
        amount=payment.amount,
        currency=payment.currency,
    )
    with db.transaction() as cursor:
        fetch_order(cursor, order_id, for_update=True)
        cursor.execute(
            "UPDATE payments SET status = 'REFUNDED', gateway_response = %s"
            " WHERE order_id = %s AND status = 'SUCCESS'",
            (result.response_text, order_id),
        )
        if cursor.rowcount:
            log_step(cursor, order_id, "RefundPayment", "REFUNDED", result.reference)
        refunded = fetch_payment(cursor, order_id)
    assert refunded is not None
    return PaymentOutcome.of(refunded)
