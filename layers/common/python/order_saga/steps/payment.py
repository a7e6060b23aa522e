"""ProcessPayment and its compensation RefundPayment, over the payments table and the gateway.

The payments row is the marker both steps read, and it is written BEFORE the gateway is called:
ProcessPayment first commits a CHARGING row (the intent, with the gateway idempotency key), then
charges, then records SUCCESS (with the charge's id) or FAILED. So a charge whose answer was lost
(the database went down, the function was killed, the gateway answered after the timeout) always
leaves a row, and a retried ProcessPayment on a CHARGING row charges again under the same key: the
gateway answers with the first charge. REFUNDED means the compensation ran.

RefundPayment never concludes "nothing was charged" from our own record, nor from a gateway's
word about a key when our row names a charge:
- a row with a charge id refunds that charge; if the gateway does not know it (or holds less of
  it), the compensation stops as a PaymentDisagreement and is left owed, for a person;
- a row without one (CHARGING: the answer was lost, or the charge never left) cancels the order's
  payment intent by its key: the gateway either answers with the charge made under it, which is
  refunded, or cancels the intent, after which a late charge under the key is declined;
- with no row at all, it first commits a REFUNDED marker (amount 0) under the order's lock, so a
  late ProcessPayment stops before the gateway, and still cancels the intent.
"""

import json
import uuid
from decimal import Decimal

from pydantic import BaseModel

from ..db import Cursor, Database
from ..errors import (
    InvalidStateTransition,
    OrderCancelled,
    PaymentDeclined,
    PaymentDisagreement,
    StepAlreadyCompensated,
)
from ..manifest import Step
from ..models import Order, OrderStatus, Payment, PaymentStatus
from ..payment_gateway import GatewayResult, HttpGateway
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
        decline = GatewayResult(False, None, json.loads(payment.gateway_response or "{}")).decline_code
        raise PaymentDeclined(f"order {payment.order_id}: payment declined ({decline})")
    return PaymentOutcome.of(payment)


def process_payment(db: Database, gateway: HttpGateway, order_id: str) -> PaymentOutcome:
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
    return _settled(_record_charge(db, order_id, result))


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
            log_step(
                cursor,
                order_id,
                Step.PROCESS_PAYMENT,
                "SUCCEEDED" if result.approved else "DECLINED",
                result.reference or result.decline_code,
            )
        recorded = fetch_payment(cursor, order_id)
    assert recorded is not None
    return recorded


def refund_payment(db: Database, gateway: HttpGateway, order_id: str) -> PaymentOutcome:
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
    charge_id = payment.gateway_reference if payment else None
    try:
        refund = _settle_with_gateway(gateway, order, charge_id)
    except PaymentDisagreement as exc:
        with db.transaction() as cursor:
            log_step(cursor, order_id, Step.REFUND_PAYMENT, "DISAGREES", str(exc))
        raise
    with db.transaction() as cursor:
        fetch_order(cursor, order_id, for_update=True)
        _record_refund(cursor, order, refund)
        refunded = fetch_payment(cursor, order_id)
    assert refunded is not None
    return PaymentOutcome.of(refunded)


def _settle_with_gateway(gateway: HttpGateway, order: Order, charge_id: str | None) -> GatewayResult | None:
    """The refund of the order's charge; None when the gateway made none (its intent is now
    cancelled, so none can land)."""
    charge_id = charge_id or gateway.cancel_intent(order.order_id)
    if charge_id is None:
        return None
    return gateway.refund(order_id=order.order_id, charge_id=charge_id, amount=order.total)


def _record_refund(cursor: Cursor, order: Order, refund: GatewayResult | None) -> None:
    """REFUNDED with the gateway's answer; a cancelled intent leaves amount 0: no money moved."""
    amount = order.total if refund else Decimal(0)
    response = refund.response_text if refund else json.dumps({"payment_intent": "canceled"})
    charge_id = refund.response.get("charge") if refund else None
    cursor.execute(
        # amount first: MySQL evaluates the assignments left to right, on the updated values.
        "UPDATE payments SET amount = IF(status = 'SUCCESS', amount, %s), status = 'REFUNDED',"
        " gateway_response = %s, gateway_reference = COALESCE(gateway_reference, %s)"
        " WHERE order_id = %s AND status IN ('SUCCESS', 'CHARGING')",
        (amount, response, charge_id, order.order_id),
    )
    if cursor.rowcount:
        status = "REFUNDED" if refund else "NOTHING_TO_REFUND"
        log_step(cursor, order.order_id, Step.REFUND_PAYMENT, status, refund.reference if refund else None)
