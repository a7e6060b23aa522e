"""The saga watchdog: whatever way an execution ends, its order ends truthfully or is flagged.

An execution can close and leave its order behind: an operator stops it, it times out, a
`States.Runtime` error ends it, MarkNeedsAttention itself runs out of retries (likely in an outage
of the database it reports to), or a cancellation is never started. `settle` takes one order,
reads what its execution did (DescribeExecution, never an error name) and, once the execution is
closed, runs every compensation still owed, each on its own (one failing does not stop the
other), then ends the order FAILED or CANCELLED with its notice. If a compensation still fails,
the order is flagged NEEDS_ATTENTION with what it owes, and the full context goes to the
compensation DLQ. A FAILED or CANCELLED order still holding money or stock (a charge that landed
after its compensation and whose refund failed) is settled the same way. An execution that
closed after ending its order but before its notify state (stopped, timed out) owed the customer
a notice: the watchdog queues it, once (logged QUEUED in saga_log; the consumer sends a kind once).

In AWS an EventBridge rule on "Step Functions Execution Status Change" (FAILED, TIMED_OUT, ABORTED)
invokes it per execution, and a schedule runs `settle_stuck` (which finds the candidates in
MySQL) for what no event reports; locally (moto emits no events) the edge's reconciler pass
calls `settle_stuck`.
"""

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import redis
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from .db import Database
from .errors import InvalidStateTransition, OrderCancelled, OrderSagaError, WorkflowUnavailable
from .manifest import ORDER_CANCELLATION, ORDER_SAGA, Step
from .models import Order, OrderStatus
from .observability import logger
from .payment_gateway import HttpGateway, create_gateway
from .repository import fetch_order, log_step
from .settings import Settings
from .steps.inventory import release_stock
from .steps.notification import NOTICE_OF, STEP_NAMES, NotificationKind
from .steps.orders import (
    StepError,
    mark_needs_attention,
    mark_order_cancelled,
    mark_order_failed,
    owed_compensations,
)
from .steps.payment import refund_payment

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient
else:
    SFNClient = SQSClient = Any

RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
ERROR_NAME = "SagaWatchdog"
# A closed execution's last events hold its notify state's exit, if it got that far (after it
# come at most a Succeed or Fail state and the execution's end).
HISTORY_TAIL = 25
# How long after its end a settled order is looked at for a notice its execution never queued
# (the sweep's part; in AWS the execution's own status event comes first).
NOTICE_SWEEP_SECONDS = 3600


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives the execution `name` of a state machine (a documented format)."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


class WatchdogOutcome(BaseModel):
    order_id: str
    action: str  # "none" (nothing owed, or its execution still runs), "settled", "flagged", "notified"
    status: OrderStatus
    execution_status: str | None = None
    owed: list[str] = []


class SagaWatchdog:
    def __init__(
        self,
        db: Database,
        cache: "redis.Redis",
        gateway: HttpGateway,
        stepfunctions: SFNClient,
        sqs: SQSClient,
        *,
        cancellation_arn: str,
        notification_queue_url: str,
        compensation_dlq_url: str,
    ) -> None:
        self._db = db
        self._cache = cache
        self._gateway = gateway
        self._stepfunctions = stepfunctions
        self._sqs = sqs
        self._cancellation_arn = cancellation_arn
        self._notification_queue_url = notification_queue_url
        self._compensation_dlq_url = compensation_dlq_url

    def settle(self, order_id: str) -> WatchdogOutcome:
        """Bring the order to a truthful end if its execution is closed (or was never started)."""
        with self._db.transaction() as cursor:
            order = fetch_order(cursor, order_id)
            owed = sorted(owed_compensations(cursor, order))
        arn = self._execution_of(order)
        execution_status = self.execution_status(arn)
        # The edge stores the ARN with the order, before StartExecution: a PENDING order whose
        # execution does not exist and that holds nothing was never started (throttled, or the
        # edge died), and the reconciler starts it.
        never_started = order.status is OrderStatus.PENDING and execution_status is None and not owed
        if order.status is OrderStatus.NEEDS_ATTENTION or execution_status == RUNNING or never_started:
            return WatchdogOutcome(
                order_id=order_id, action="none", status=order.status, execution_status=execution_status
            )
        if order.status.is_terminal and not self._holds_money_or_stock(order, owed):
            notified = self._queue_missing_notice(order, arn, execution_status)
            return WatchdogOutcome(
                order_id=order_id,
                action="notified" if notified else "none",
                status=order.status,
                execution_status=execution_status,
            )
        return self._finish(order, arn, execution_status, owed)

    def resolve(self, order_id: str) -> WatchdogOutcome:
        """An operator's finish of a NEEDS_ATTENTION order (`order-saga attention resolve`): run
        what it still owes, then end it FAILED or CANCELLED; still failing, it stays flagged."""
        with self._db.transaction() as cursor:
            order = fetch_order(cursor, order_id)
            owed = sorted(owed_compensations(cursor, order))
        if order.status is not OrderStatus.NEEDS_ATTENTION:
            raise InvalidStateTransition(f"order {order_id} is {order.status}, not NEEDS_ATTENTION")
        arn = order.cancellation_execution_arn or order.execution_arn
        return self._finish(order, arn, self.execution_status(arn), owed)

    def _finish(
        self, order: Order, arn: str | None, execution_status: str | None, owed: list[str]
    ) -> WatchdogOutcome:
        failures = self._compensate(order.order_id, owed)
        if failures:
            return self._flag(order, arn, execution_status, failures)
        return self._end(order, execution_status)

    def settle_stuck(self, grace_seconds: float, limit: int = 100) -> list[WatchdogOutcome]:
        """Settle every order that an execution may have left behind, untouched for `grace_seconds`:
        PENDING with an execution, CANCELLING, FAILED or CANCELLED still holding money or stock,
        then (a query of its own, so they never crowd out the others) the settled orders of the
        last NOTICE_SWEEP_SECONDS whose notice was not sent."""
        grace = int(grace_seconds * 1_000_000)
        with self._db.transaction() as cursor:
            cursor.execute(
                "SELECT o.order_id FROM orders o WHERE o.updated_at < CURRENT_TIMESTAMP(3) - INTERVAL %s"
                " MICROSECOND AND ((o.status = 'PENDING' AND o.execution_arn IS NOT NULL)"
                " OR o.status = 'CANCELLING' OR (o.status IN ('FAILED', 'CANCELLED') AND ("
                " EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.order_id"
                " AND p.status IN ('SUCCESS', 'CHARGING')) OR EXISTS (SELECT 1 FROM inventory_reservations r"
                " WHERE r.order_id = o.order_id AND r.status <> 'RELEASED'))))"
                " ORDER BY o.updated_at LIMIT %s",
                (grace, limit),
            )
            candidates = [row["order_id"] for row in cursor.fetchall()]
            cursor.execute(
                "SELECT o.order_id FROM orders o WHERE o.updated_at < CURRENT_TIMESTAMP(3) - INTERVAL %s"
                " MICROSECOND AND o.updated_at > CURRENT_TIMESTAMP(3) - INTERVAL %s MICROSECOND"
                " AND o.email IS NOT NULL AND o.status IN ('CONFIRMED', 'FAILED', 'CANCELLED')"
                " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.order_id = o.order_id AND n.kind ="
                " CASE o.status WHEN 'CONFIRMED' THEN 'ORDER_CONFIRMATION' WHEN 'FAILED' THEN 'FAILURE_ALERT'"
                " ELSE 'CANCELLATION_NOTICE' END) AND NOT EXISTS (SELECT 1 FROM saga_log l"
                " WHERE l.saga_id = o.order_id AND l.status = 'QUEUED') ORDER BY o.updated_at LIMIT %s",
                (grace, grace + NOTICE_SWEEP_SECONDS * 1_000_000, limit),
            )
            candidates += [row["order_id"] for row in cursor.fetchall() if row["order_id"] not in candidates]
        outcomes = []
        for order_id in candidates:
            try:
                outcomes.append(self.settle(order_id))
            except (OrderSagaError, ClientError, BotoCoreError) as exc:  # the next pass tries again
                logger.warning("order not settled", extra={"order_id": order_id, "error": str(exc)})
        return outcomes

    def execution_status(self, execution_arn: str | None) -> str | None:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED; None when there is no such execution."""
        if execution_arn is None:
            return None
        try:
            return str(self._stepfunctions.describe_execution(executionArn=execution_arn)["status"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return None
            raise WorkflowUnavailable(f"DescribeExecution: {exc}") from exc
        except BotoCoreError as exc:
            raise WorkflowUnavailable(f"DescribeExecution: {exc}") from exc

    # -- steps ---------------------------------------------------------------------------------

    def _execution_of(self, order: Order) -> str | None:
        if order.status is OrderStatus.CANCELLING:
            return order.cancellation_execution_arn or execution_arn_for(
                self._cancellation_arn, order.order_id
            )
        if order.status is OrderStatus.CANCELLED and order.cancellation_execution_arn:
            return order.cancellation_execution_arn
        return order.execution_arn

    def _queue_missing_notice(self, order: Order, arn: str | None, execution_status: str | None) -> bool:
        """An execution that closed after ending its order but before its notify state (stopped,
        timed out) leaves the customer untold: queue the notice (the consumer sends a kind once).
        Whether the notify state ran is read from the end of the execution's history."""
        kind = NOTICE_OF.get(order.status)
        if kind is None or not order.email or arn is None or execution_status in {None, SUCCEEDED}:
            return False
        if self._queued_before(order.order_id, kind):
            return False
        events = self._stepfunctions.get_execution_history(
            executionArn=arn, reverseOrder=True, maxResults=HISTORY_TAIL
        )["events"]
        exited = {event.get("stateExitedEventDetails", {}).get("name") for event in events}
        if STEP_NAMES[kind] in exited:
            return False
        self._queue_notice(order.order_id, kind)
        logger.info("notice queued by the watchdog", extra={"order_id": order.order_id, "kind": kind})
        return True

    def _queued_before(self, order_id: str, kind: NotificationKind) -> bool:
        with self._db.transaction() as cursor:
            cursor.execute(
                "SELECT 1 FROM saga_log WHERE saga_id = %s AND step = %s AND status = 'QUEUED' LIMIT 1",
                (order_id, STEP_NAMES[kind]),
            )
            return cursor.fetchone() is not None

    def _queue_notice(self, order_id: str, kind: NotificationKind) -> None:
        """Queue the notice and log it (QUEUED, by the watchdog), so no later pass queues it again."""
        body = json.dumps({"order_id": order_id, "kind": kind})
        self._sqs.send_message(QueueUrl=self._notification_queue_url, MessageBody=body)
        with self._db.transaction() as cursor:
            log_step(cursor, order_id, STEP_NAMES[kind], "QUEUED", ERROR_NAME)

    @staticmethod
    def _holds_money_or_stock(order: Order, owed: list[str]) -> bool:
        """A finished order's compensations left markers; only a real holding counts here."""
        return order.status in {OrderStatus.FAILED, OrderStatus.CANCELLED} and bool(owed)

    def _compensate(self, order_id: str, owed: list[str]) -> dict[str, str]:
        """Run each owed compensation on its own; the failures, by compensation."""
        steps: dict[str, Callable[[], object]] = {
            Step.REFUND_PAYMENT: lambda: refund_payment(self._db, self._gateway, order_id),
            Step.RELEASE_STOCK: lambda: release_stock(self._db, self._cache, order_id),
        }
        failures = {}
        for name in owed:
            try:
                steps[name]()
            except Exception as exc:  # each compensation runs whatever the other did
                failures[name] = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "compensation failed", extra={"order_id": order_id, "step": name, "error": failures[name]}
                )
        return failures

    def _end(self, order: Order, execution_status: str | None) -> WatchdogOutcome:
        cancelled = (
            order.cancel_requested
            or order.cancellation_execution_arn is not None
            or order.status in {OrderStatus.CANCELLING, OrderStatus.CANCELLED}
        )
        if cancelled:
            outcome = mark_order_cancelled(self._db, self._cache, order.order_id)
        else:
            error = StepError(
                error=f"Execution.{execution_status or 'NOT_STARTED'}",
                cause=f"{ERROR_NAME}: the execution closed before the order ended",
            )
            outcome = mark_order_failed(self._db, self._cache, order.order_id, error)
        kind = NotificationKind.CANCELLATION_NOTICE if cancelled else NotificationKind.FAILURE_ALERT
        self._queue_notice(order.order_id, kind)
        logger.info(
            "order settled by the watchdog", extra={"order_id": order.order_id, "status": outcome.status}
        )
        return WatchdogOutcome(
            order_id=order.order_id,
            action="settled",
            status=outcome.status,
            execution_status=execution_status,
        )

    def _flag(
        self, order: Order, execution_arn: str | None, execution_status: str | None, failures: dict[str, str]
    ) -> WatchdogOutcome:
        cause = "; ".join(f"{name}: {failure}" for name, failure in sorted(failures.items()))
        error = StepError(error="CompensationFailed", cause=cause)
        outcome = mark_needs_attention(self._db, self._cache, order.order_id, error)
        machine = ORDER_CANCELLATION if order.status is OrderStatus.CANCELLING else ORDER_SAGA
        body = {
            "order_id": order.order_id,
            "state_machine": machine.name,
            "machine_role": "cancellation" if machine is ORDER_CANCELLATION else "saga",
            "execution_arn": execution_arn,
            "source": ERROR_NAME,
            "context": {
                "error": {"Error": OrderCancelled.__name__} if order.cancel_requested else None,
                "execution_status": execution_status,
                "order_status": order.status,
                "owed": outcome.owed_compensations,
                "compensation_error": {"Error": error.error, "Cause": cause},
            },
        }
        try:
            self._sqs.send_message(QueueUrl=self._compensation_dlq_url, MessageBody=json.dumps(body))
        except (ClientError, BotoCoreError) as exc:  # the NEEDS_ATTENTION row in MySQL stands
            logger.error("DLQ message not sent", extra={"order_id": order.order_id, "error": str(exc)})
        return WatchdogOutcome(
            order_id=order.order_id,
            action="flagged",
            status=outcome.status,
            execution_status=execution_status,
            owed=outcome.owed_compensations,
        )


def create_watchdog(settings: Settings, db: Database, cache: "redis.Redis") -> SagaWatchdog:
    """The watchdog of a deployment: the same settings in the edge and in the SagaWatchdog function."""
    return SagaWatchdog(
        db,
        cache,
        create_gateway(settings),
        boto3.client("stepfunctions"),
        boto3.client("sqs"),
        cancellation_arn=settings.order_cancellation_state_machine_arn,
        notification_queue_url=settings.notification_queue_url,
        compensation_dlq_url=settings.compensation_dlq_url,
    )
