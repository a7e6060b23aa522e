"""What a customer is told when an order does not complete: a sentence and a stable reason code.

The sentence goes into `failure_reason` (the API and the e-mail); the code into `reason_code` (a
field of the public contract clients may branch on). Neither ever carries internals: the raw error
(hosts, ARNs, SQL, gateway or Lambda payloads) stays with the operators, in saga_log, the logs and
the compensation DLQ.
"""

import json
from enum import StrEnum

from .db import Cursor
from .errors import OrderCancelled, OutOfStock, PaymentDeclined, PaymentGatewayUnavailable


class ReasonCode(StrEnum):
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    PAYMENT_FAILED = "PAYMENT_FAILED"  # the payment could not be completed (not a decline)
    ORDER_FAILED = "ORDER_FAILED"  # any other failure, compensated
    CANCELLED_BY_CUSTOMER = "CANCELLED_BY_CUSTOMER"
    UNDER_REVIEW = "UNDER_REVIEW"  # NEEDS_ATTENTION: a person finishes the order


SENTENCES = {
    ReasonCode.PAYMENT_DECLINED: "Your card was declined.",
    ReasonCode.PAYMENT_FAILED: "We could not complete your payment. Any amount taken has been refunded.",
    ReasonCode.ORDER_FAILED: "We could not complete your order. Any amount taken has been refunded.",
    ReasonCode.CANCELLED_BY_CUSTOMER: "You cancelled this order. Any amount taken has been refunded.",
    ReasonCode.UNDER_REVIEW: "We hit a problem finishing your order; our team is on it and will contact you.",
}


# The gateway's decline codes a customer can act on, in their words (others: the generic sentence).
DECLINE_SENTENCES = {
    "insufficient_funds": "Your card was declined: the funds were insufficient.",
    "expired_card": "Your card was declined: it has expired.",
}


def reason_code(error_name: str | None) -> ReasonCode:
    """The code of a failure, from the error name a Catch caught."""
    by_error = {
        PaymentDeclined.__name__: ReasonCode.PAYMENT_DECLINED,
        OutOfStock.__name__: ReasonCode.OUT_OF_STOCK,
        OrderCancelled.__name__: ReasonCode.CANCELLED_BY_CUSTOMER,
        PaymentGatewayUnavailable.__name__: ReasonCode.PAYMENT_FAILED,
    }
    return by_error.get(error_name or "", ReasonCode.ORDER_FAILED)


def sentence(cursor: Cursor, order_id: str, code: ReasonCode) -> str:
    """The customer's sentence; for OUT_OF_STOCK it names the products now short, by catalog name,
    and for PAYMENT_DECLINED it says why the gateway declined, when the customer can act on it."""
    if code is ReasonCode.PAYMENT_DECLINED:
        return _declined(cursor, order_id)
    if code is not ReasonCode.OUT_OF_STOCK:
        return SENTENCES[code]
    cursor.execute(
        "SELECT i.name FROM order_items oi JOIN inventory i ON i.product_id = oi.product_id"
        " WHERE oi.order_id = %s AND i.stock - i.reserved < oi.quantity ORDER BY i.name",
        (order_id,),
    )
    names = [row["name"] for row in cursor.fetchall() if row["name"]]
    if not names:
        return "Sorry, some items in your order are sold out."
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"Sorry, {listed} {'is' if len(names) == 1 else 'are'} sold out."


def _declined(cursor: Cursor, order_id: str) -> str:
    cursor.execute("SELECT gateway_response FROM payments WHERE order_id = %s", (order_id,))
    row = cursor.fetchone()
    answer = json.loads(row["gateway_response"] or "{}") if row else {}
    decline_code = (answer.get("error") or {}).get("decline_code")
    return DECLINE_SENTENCES.get(decline_code, SENTENCES[ReasonCode.PAYMENT_DECLINED])
