"""SendNotification: the e-mails the saga queues (confirmation, failure alert, cancellation notice).

A notice is mailed once per order and kind, however many consumers get its message: the consumer
claims it in `notifications` (SENDING, with its claimant and the claim time, committed on its own)
before it calls SES, and records it SENT with SES's message id after. A consumer that finds the
notice SENT skips it; one that finds a live claim mails nothing and fails the message
(NoticeInFlight), which SQS redelivers after the visibility timeout. A claim older than
CLAIM_STALE_AFTER_SECONDS belongs to a consumer that died, and is taken over (`Send<Kind>
RECLAIMED` in saga_log). That takeover is the one way left to mail twice: when the dead claimant's
mail had reached SES before it could record SENT. A mail lost would be the worse failure for a
customer. Every mail SES accepted gets its own `Send<Kind> SENT` entry, which the auditor counts.
"""

from enum import StrEnum
from typing import Any, cast

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from ..db import Cursor, Database
from ..errors import NoticeInFlight
from ..functions import function
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
    reclaimed: bool = False  # sent under a claim taken over from a consumer that died


class Claim(BaseModel):
    """What one consumer may do with a notice: mail it (`taken`), or skip it (sent already, with
    SES's message id, or not owed)."""

    taken: bool
    reclaimed: bool = False
    message_id: str | None = None


# A claim this old belongs to a consumer that is no longer running: Lambda ends an invocation at
# the function's timeout, well before. It stays below the queue's visibility timeout (six function
# timeouts, cdk/capabilities/queues.py), so the dead claimant's own message, redelivered, takes the
# notice over instead of failing towards the DLQ.
CLAIM_STALE_AFTER_SECONDS = 3 * function(Step.SEND_NOTIFICATION).timeout_seconds


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
    db: Database, ses: Any, sender: str, message: NotificationMessage, claimant: str
) -> NotificationOutcome:
    """Mail the notice once per order and kind, claimed by `claimant` first, unless it is being
    mailed by a live claimant (NoticeInFlight) or the order has moved on to another ending (a
    saga's confirmation that arrives after the customer cancelled is recorded STALE)."""
    with db.transaction() as cursor:
        order = fetch_order(cursor, message.order_id)
        claim = _claim(cursor, order, message, claimant)
    if not claim.taken:
        return NotificationOutcome(**message.model_dump(), message_id=claim.message_id, sent=False)
    try:
        message_id = _mail(ses, sender, order, message.kind)
    except ClientError:  # SES refused it: nothing went out, so the redelivery may claim it afresh
        with db.transaction() as cursor:
            cursor.execute(
                "DELETE FROM notifications"
                " WHERE order_id = %s AND kind = %s AND claimant = %s AND status = 'SENDING'",
                (message.order_id, message.kind, claimant),
            )
        raise
    with db.transaction() as cursor:
        cursor.execute(
            "UPDATE notifications SET status = 'SENT', message_id = %s, sent_at = CURRENT_TIMESTAMP(3)"
            " WHERE order_id = %s AND kind = %s",
            (message_id, message.order_id, message.kind),
        )
        log_step(cursor, message.order_id, STEP_NAMES[message.kind], "SENT", message_id)
    return NotificationOutcome(
        **message.model_dump(), message_id=message_id, sent=True, reclaimed=claim.reclaimed
    )


def _claim(cursor: Cursor, order: Order, message: NotificationMessage, claimant: str) -> Claim:
    """Whether `claimant` mails the notice; when it does, its SENDING row is written."""
    cursor.execute(
        "SELECT message_id FROM notifications WHERE order_id = %s AND kind = %s AND status = 'SENT'",
        (message.order_id, message.kind),
    )
    already = cursor.fetchone()
    if already is not None:
        return Claim(taken=False, message_id=already["message_id"])
    if not order.email:
        logger.info("order has no e-mail address; nothing sent", extra={"kind": message.kind})
        return Claim(taken=False)
    if CURRENT_NOTICE.get(order.status, message.kind) is not message.kind:
        logger.info("stale notice; nothing sent", extra={"kind": message.kind, "status": order.status})
        log_step(cursor, message.order_id, STEP_NAMES[message.kind], "STALE", order.status)
        return Claim(taken=False)
    cursor.execute(
        "INSERT INTO notifications (order_id, kind, status, claimant, claimed_at, sent_at)"
        " VALUES (%s, %s, 'SENDING', %s, CURRENT_TIMESTAMP(3), NULL)"
        " ON DUPLICATE KEY UPDATE order_id = order_id",
        (message.order_id, message.kind, claimant),
    )
    if cursor.rowcount == 1:
        return Claim(taken=True)
    return _take_over(cursor, message, claimant)


def _take_over(cursor: Cursor, message: NotificationMessage, claimant: str) -> Claim:
    """The notice another consumer claimed: sent by now, still in its hands (NoticeInFlight), or
    taken over from it when its claim is stale."""
    cursor.execute(
        "SELECT status, message_id, claimant,"
        " TIMESTAMPDIFF(MICROSECOND, claimed_at, CURRENT_TIMESTAMP(3)) / 1e6 AS age"
        " FROM notifications WHERE order_id = %s AND kind = %s FOR UPDATE",
        (message.order_id, message.kind),
    )
    held = cast("dict[str, Any]", cursor.fetchone())  # the row the INSERT found, and locked
    if held["status"] == "SENT":
        return Claim(taken=False, message_id=held["message_id"])
    age = float(held["age"])
    if age < CLAIM_STALE_AFTER_SECONDS:
        logger.info("notice claimed by another consumer; redelivered later", extra={"kind": message.kind})
        raise NoticeInFlight(f"{message.kind} of order {message.order_id} is claimed by {held['claimant']}")
    cursor.execute(
        "UPDATE notifications SET claimant = %s, claimed_at = CURRENT_TIMESTAMP(3)"
        " WHERE order_id = %s AND kind = %s",
        (claimant, message.order_id, message.kind),
    )
    detail = f"from {held['claimant']}, claimed {age:.0f}s before"
    log_step(cursor, message.order_id, STEP_NAMES[message.kind], "RECLAIMED", detail)
    logger.warning("stale claim taken over; the notice may be mailed twice", extra={"detail": detail})
    return Claim(taken=True, reclaimed=True)


def _mail(ses: Any, sender: str, order: Order, kind: NotificationKind) -> str:
    """SES's message id for the mail it accepted."""
    subject, body = render(order, kind)
    response = ses.send_email(
        Source=sender,
        Destination={"ToAddresses": [order.email]},
        Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": body}}},
    )
    return str(response["MessageId"])
