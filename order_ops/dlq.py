"""The compensation DLQ: messages the state machines' CompensationFailed branch leaves for people.

Each message carries the order id, the state machine and execution, and the execution's full
state (`context`: the input, every step's output, the error that started the compensation and
the compensation's own error). Re-driving runs the compensation again, step by step, through the
same Lambda functions (each is idempotent, so steps that had succeeded do nothing), then queues
the customer notice; only a message whose compensation now completes is deleted.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from order_saga.db import Database
from order_saga.errors import OrderCancelled, OrderNotFound
from order_saga.manifest import COMPENSATIONS, Step, resource_name
from order_saga.models import Order, OrderStatus
from order_saga.repository import fetch_order

# An order in one of these is done; a re-drive only deletes its message when it owes nothing.
SETTLED = {OrderStatus.FAILED, OrderStatus.CANCELLED}
# How long a re-driven message stays hidden from a concurrent re-drive (one run takes seconds).
REDRIVE_VISIBILITY_SECONDS = 300
# How long a message read by `peek` stays hidden at most (it is made visible again at once).
PEEK_VISIBILITY_SECONDS = 30


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    receipt_handle: str
    body: dict[str, Any]

    @property
    def order_id(self) -> str:
        return str(self.body.get("order_id", "?"))

    @property
    def context(self) -> dict[str, Any]:
        context = self.body.get("context")
        return context if isinstance(context, dict) else {}

    @property
    def cancelled(self) -> bool:
        """Whether the compensation ends the order CANCELLED (a cancellation) rather than FAILED:
        the message says which machine's role it came from (the cancellation machine, or a saga
        whose customer cancelled), never which name that machine has in an environment."""
        error = self.context.get("error") or {}
        return (
            self.body.get("machine_role") == "cancellation" or error.get("Error") == OrderCancelled.__name__
        )

    @property
    def outcome(self) -> OrderStatus:
        """The status the order ends in once its compensation completes."""
        return OrderStatus.CANCELLED if self.cancelled else OrderStatus.FAILED

    def steps(self) -> list[Step]:
        return [*COMPENSATIONS, Step.MARK_ORDER_CANCELLED if self.cancelled else Step.MARK_ORDER_FAILED]

    def notice(self) -> str:
        return "CANCELLATION_NOTICE" if self.cancelled else "FAILURE_ALERT"

    def failure(self) -> dict[str, Any]:
        """The compensation's error: of a Mark step, or of the first compensation still owed."""
        compensations = self.context.get("compensations") or {}
        owed = [entry.get("error") or {} for entry in compensations.values() if entry.get("owed")]
        failure = self.context.get("compensation_error") or (owed[0] if owed else {})
        return failure if isinstance(failure, dict) else {}

    def summary(self) -> str:
        failure = self.failure()
        return (
            f"{self.order_id}  {self.body.get('state_machine', '?')}  "
            f"{failure.get('Error', '?')}  {self.body.get('execution_arn', '')}"
        )


def peek(sqs: Any, queue_url: str) -> list[DlqMessage]:
    """Every message on the queue, left there. Each batch is hidden while the next is read (a
    zero visibility timeout would return the same first ten again and again), then all of them
    are made visible again."""
    seen: dict[str, DlqMessage] = {}
    try:
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=PEEK_VISIBILITY_SECONDS
            ).get("Messages", [])
            fresh = [message for message in batch if message["MessageId"] not in seen]
            if not fresh:
                return list(seen.values())
            for message in fresh:
                seen[message["MessageId"]] = _parse(message)
    finally:
        for message in seen.values():
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
            )


def _parse(message: dict[str, Any]) -> DlqMessage:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = {"unreadable": message["Body"]}
    return DlqMessage(message["MessageId"], message["ReceiptHandle"], body if isinstance(body, dict) else {})


@dataclass
class RedriveReport:
    """What a re-drive did: a few lines per message, and how many messages stay on the queue."""

    lines: list[str] = field(default_factory=list)
    kept: int = 0


def redrive_all(
    target: "RedriveTarget", queue_url: str, notification_queue_url: str, order_id: str | None = None
) -> RedriveReport:
    """Re-drive every message (or those of one order)."""
    sqs = target.sqs
    messages: dict[str, DlqMessage] = {}
    while True:  # take them all, hidden from a concurrent re-drive while this one works
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=REDRIVE_VISIBILITY_SECONDS
        ).get("Messages", [])
        if not batch:
            break
        messages |= {message.message_id: message for message in map(_parse, batch)}
    report = RedriveReport()
    for message in messages.values():
        if order_id and message.order_id != order_id:
            target.release(queue_url, message)
            continue
        lines, completed = redrive(message, target, queue_url, notification_queue_url)
        report.lines += [f"{message.order_id}:", *(f"  {line}" for line in lines)]
        report.kept += not completed
    return report


@dataclass(frozen=True)
class RedriveTarget:
    """Where a re-drive acts: the environment's functions (by their deployed names), its queues,
    and its database (to check what the compensation left)."""

    lam: Any
    sqs: Any
    database: Database
    environment: str

    def invoke(self, step: Step, payload: dict[str, Any]) -> tuple[bool, str]:
        reply = self.lam.invoke(
            FunctionName=resource_name(self.environment, step), Payload=json.dumps(payload).encode()
        )
        return not reply.get("FunctionError"), reply["Payload"].read().decode()

    def order(self, order_id: str) -> Order | None:
        with self.database.transaction() as cursor:
            try:
                return fetch_order(cursor, order_id)
            except OrderNotFound:
                return None

    def release(self, queue_url: str, message: DlqMessage) -> None:
        self.sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
        )


def redrive(
    message: DlqMessage, target: RedriveTarget, queue_url: str, notification_queue_url: str
) -> tuple[list[str], bool]:
    """Run the message's compensation again; delete the message once the order is in the state
    the compensation owes it. The steps' report, and whether it completed."""
    order = target.order(message.order_id)
    if order is not None and order.status in SETTLED and not order.owed_compensations:
        # Settled and owing nothing (the watchdog or a re-drive got there first): nothing to run,
        # and running a Mark step would turn a cancelled order into a failed one.
        target.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message.receipt_handle)
        return [f"already {order.status.value}, owing nothing", "message deleted"], True
    report: list[str] = []
    error = message.context.get("error")
    for step in message.steps():
        ok, answer = target.invoke(step, {"order_id": message.order_id} | ({"error": error} if error else {}))
        if not ok:
            target.release(queue_url, message)
            return [*report, f"{step}: failed again: {answer[:300]}", "message kept on the queue"], False
        report.append(f"{step}: ok")
    order = target.order(message.order_id)
    if order is None or order.status is not message.outcome or order.owed_compensations:
        target.release(queue_url, message)
        found = "no such order" if order is None else f"order {order.status.value}"
        return [*report, f"{found}, not {message.outcome.value}: message kept on the queue"], False
    target.sqs.send_message(
        QueueUrl=notification_queue_url,
        MessageBody=json.dumps({"order_id": message.order_id, "kind": message.notice()}),
    )
    report.append(f"{message.notice()} queued")
    target.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message.receipt_handle)
    report.append("message deleted")
    return report, True
