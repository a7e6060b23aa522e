"""The saga watchdog: whatever way an execution ends, its order ends truthfully or is flagged.

`settle` takes one order and reads what its execution did (DescribeExecution, never an error
name). An order its saga never touched (PENDING, no payments row, no reservation, no step in
saga_log) and whose execution does not exist is started, never failed. An execution still open
(RUNNING, or PENDING_REDRIVE: it runs again) is left alone. Once the execution is closed, every
compensation still owed runs, each on its own, then the order ends FAILED or CANCELLED with its
notice; a compensation still failing flags it NEEDS_ATTENTION and puts the context on the
compensation DLQ. A notice an execution closed before queueing is queued, once. The rules and
their story are in docs/architecture.md and docs/decisions.md.

In AWS EventBridge invokes it per execution that failed, timed out or was aborted, and a schedule
runs `settle_stuck`; locally the edge's reconciler pass calls `settle_stuck`.
"""

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import boto3
import redis
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from .db import Cursor, Database
from .errors import InvalidStateTransition, OrderCancelled, OrderSagaError, WorkflowUnavailable
from .manifest import ORDER_CANCELLATION, ORDER_SAGA, Step
from .models import Order, OrderStatus
from .observability import logger
from .payment_gateway import HttpGateway, create_gateway
from .repository import fetch_order, log_step, logged
from .settings import Settings
from .steps.inventory import release_stock
from .steps.notification import NOTICE_OF, STEP_NAMES, NotificationKind
from .steps.orders import (
    StepError,
    mark_needs_attention,
    mark_order_cancelled,
    mark_order_failed,
    never_started,
    owed_compensations,
)
from .steps.payment import refund_payment
from .workflow import execution_arn_for, start_saga

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient
else:
    SFNClient = SQSClient = Any

# An execution in one of these runs, or will run again (a redriven one): its order is its own.
OPEN = frozenset({"RUNNING", "PENDING_REDRIVE"})
SUCCEEDED = "SUCCEEDED"
# DescribeExecution is eventually consistent: a "not found" for an execution of an order touched
# this recently is asked once more, after RECHECK_SECONDS, before the watchdog acts on it.
RECENT_SECONDS = 60
RECHECK_SECONDS = 1.0
ERROR_NAME = "SagaWatchdog"
# A closed execution's last events hold its notify state's exit, if it got that far (after it
# come at most a Succeed or Fail state and the execution's end).
HISTORY_TAIL = 25
# How long after its end a settled order is looked at for a notice its execution never queued
# (the sweep's part; in AWS the execution's own status event comes first).
NOTICE_SWEEP_SECONDS = 3600


# What the watchdog did to an order: "none" (nothing owed, or its execution still runs).
WatchdogAction = Literal["none", "started", "settled", "flagged", "notified"]


class WatchdogOutcome(BaseModel):
    order_id: str
    action: WatchdogAction
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
        saga_arn: str,
        cancellation_arn: str,
        notification_queue_url: str,
        compensation_dlq_url: str,
    ) -> None:
        self._db = db
        self._cache = cache
        self._gateway = gateway
        self._stepfunctions = stepfunctions
        self._sqs = sqs
        self._saga_arn = saga_arn
        self._cancellation_arn = cancellation_arn
        self._notification_queue_url = notification_queue_url
        self._compensation_dlq_url = compensation_dlq_url

    def settle(self, order_id: str) -> WatchdogOutcome:
        """Bring the order to a truthful end if its execution is closed, or start it if its saga
        never started."""
        with self._db.transaction() as cursor:
            order = fetch_order(cursor, order_id)
            owed = sorted(owed_compensations(cursor, order))
            untouched = never_started(cursor, order)
            recent = self._touched_recently(cursor, order_id)
        arn = self._execution_of(order)
        execution_status = self.execution_status(arn)
        if execution_status is None and untouched:
            return self._start(order)
        if execution_status is None and recent and not order.status.is_terminal:
            execution_status = self._recheck(arn)
        if order.status is OrderStatus.NEEDS_ATTENTION or execution_status in OPEN:
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
        """RUNNING, PENDING_REDRIVE, SUCCEEDED, FAILED, TIMED_OUT or ABORTED; None when there is
        no such execution."""
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

    def _start(self, order: Order) -> WatchdogOutcome:
        """Start a saga that never started (a StartExecution refused for longer than the grace):
        under the order's name, so a start made meanwhile (ExecutionAlreadyExists) counts."""
        start_saga(self._db, self._stepfunctions, self._saga_arn, order.order_id, ERROR_NAME)
        logger.info("saga started by the watchdog", extra={"order_id": order.order_id})
        return WatchdogOutcome(order_id=order.order_id, action="started", status=order.status)

    def _recheck(self, arn: str | None) -> str | None:
        """The status asked once more, a moment later: a "not found" for a new execution may be
        DescribeExecution's eventual consistency, not an execution that never was."""
        time.sleep(RECHECK_SECONDS)
        return self.execution_status(arn)

    @staticmethod
    def _touched_recently(cursor: Cursor, order_id: str) -> bool:
        """Whether the order or its saga_log changed in the last RECENT_SECONDS (database clock)."""
        cursor.execute(
            "SELECT GREATEST(o.updated_at, COALESCE(MAX(l.`timestamp`), o.updated_at))"
            " > CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND AS recent"
            " FROM orders o LEFT JOIN saga_log l ON l.saga_id = o.order_id WHERE o.order_id = %s"
            " GROUP BY o.order_id, o.updated_at",
            (RECENT_SECONDS, order_id),
        )
        row = cursor.fetchone()
        return bool(row and row["recent"])

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
            return logged(cursor, order_id, [STEP_NAMES[kind]], "QUEUED")

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
                error=f"Execution.{execution_status or 'NOT_FOUND'}",
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
        saga_arn=settings.order_saga_state_machine_arn,
        cancellation_arn=settings.order_cancellation_state_machine_arn,
        notification_queue_url=settings.notification_queue_url,
        compensation_dlq_url=settings.compensation_dlq_url,
    )
