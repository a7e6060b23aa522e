"""SendNotification: the e-mails the saga queues (confirmation, failure alert, cancellation notice).

The queue delivers at least once; the notifications table records what was sent, so a repeated
message is skipped. The record is written after SES accepted the mail: a crash in between sends
the mail again on redelivery, which is the better failure for a customer than a lost mail.
Every mail SES accepted gets its own saga_log entry (`Send<Kind> SENT`, with SES's message id):
the auditor counts those, since the table's key keeps one row however many mails went out.
"""

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..db import Database
from ..manifest import Step
from ..models import Order, OrderId, OrderStatus
from ..observability import logger
from ..repository import fetch_order, log_step


class NotificationKind(StrEnum):
    ORDER_CONFIRMATION = "ORDER_CONFIRMATION"
    FAILURE_ALERT = "FAILURE_ALERT"
    CANCELLATION_NOTICE = "CANCELLATION_NOTICE"


# The state of the machines that queues each notice.
STEP_NAMES = {
    NotificationKind.ORDER_CONFIRMATION: Step.SEND_ORDER_CONFIRMATION,
    NotificationKind.FAILURE_ALERT: Step.SEND_FAILURE_ALERT,
    NotificationKind.CANCELLATION_NOTICE: Step.SEND_CANCELLATION_NOTICE,
}

# The notice each final status owes its customer (when the order has an e-mail address).
NOTICE_OF = {
    OrderStatus.CONFIRMED: NotificationKind.ORDER_CONFIRMATION,
    OrderStatus.FAILED: NotificationKind.FAILURE_ALERT,
    OrderStatus.CANCELLED: NotificationKind.CANCELLATION_NOTICE,
}


class NotificationMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: OrderId
    kind: NotificationKind


class NotificationOutcome(BaseModel):
    order_id: str
    kind: NotificationKind
    message_id: str | None
    sent: bool


def render(order: Order, kind: NotificationKind) -> tuple[str, str]:
    """The subject and plain-text body of the e-mail."""
    lines = "\n".join(
        f"  {item.quantity} x {item.product_id} at {item.unit_price} {order.currency}" for item in order.items
    )
    if kind is NotificationKind.ORDER_CONFIRMATION:
        return (
            f"Your order {order.order_id} is confirmed",
            f"Thank you for your order.\n\n{lines}\n\nTotal: {order.total} {order.currency}\n",
        )
    if kind is NotificationKind.FAILURE_ALERT:
        return (
            f"We could not complete your order {order.order_id}",
            f"Your order could not be completed. {order.failure_reason or ''}\n"
            "Any amount taken has been refunded and no items were reserved for you.\n",
        )
    return (
        f"Your order {order.order_id} is cancelled",
        f"Your order has been cancelled as requested.\n\n{lines}\n\n"
        f"{order.total} {order.currency} has been refunded to your payment method.\n",
    )


# The notice an order in this status may still be sent; any other is stale. A cancellation in
# flight already owes its own notice.
CURRENT_NOTICE = NOTICE_OF | {OrderStatus.CANCELLING: NotificationKind.CANCELLATION_NOTICE}


def send_notification(
    db: Database, ses: Any, sender: str, message: NotificationMessage
) -> NotificationOutcome:
    """Send the notice once per order and kind, unless the order has moved on to another ending
    (a saga's confirmation that arrives after the customer cancelled is never mailed)."""
    with db.transaction() as cursor:
        order = fetch_order(cursor, message.order_id)
        cursor.execute(
            "SELECT message_id FROM notifications WHERE order_id = %s AND kind = %s",
            (message.order_id, message.kind),
        )
        already = cursor.fetchone()
    if already is not None:
        return NotificationOutcome(**message.model_dump(), message_id=already["message_id"], sent=False)
    if not order.email:
        logger.info("order has no e-mail address; nothing sent", extra={"kind": message.kind})
        return NotificationOutcome(**message.model_dump(), message_id=None, sent=False)
    if CURRENT_NOTICE.get(order.status, message.kind) is not message.kind:
        logger.info("stale notice; nothing sent", extra={"kind": message.kind, "status": order.status})
        with db.transaction() as cursor:
            log_step(cursor, message.order_id, STEP_NAMES[message.kind], "STALE", order.status)
        return NotificationOutcome(**message.model_dump(), message_id=None, sent=False)
    subject, body = render(order, message.kind)
    response = ses.send_email(
        Source=sender,
        Destination={"ToAddresses": [order.email]},
        Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": body}}},
    )
    with db.transaction() as cursor:
        cursor.execute(
            "INSERT INTO notifications (order_id, kind, message_id) VALUES (%s, %s, %s)"
            " ON DUPLICATE KEY UPDATE order_id = order_id",
            (message.order_id, message.kind, response["MessageId"]),
        )
        log_step(cursor, message.order_id, STEP_NAMES[message.kind], "SENT", response["MessageId"])
    return NotificationOutcome(**message.model_dump(), message_id=response["MessageId"], sent=True)
