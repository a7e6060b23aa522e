"""The saga watchdog's view of an execution: an order its saga never started is started once and
never failed; an execution pending a redrive is open; a "not found" for a new execution is asked
again before the watchdog acts. MariaDB, Redis and the gateway server are real; AWS is moto,
in-process."""

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import redis
from moto import mock_aws
from moto.stepfunctions.models import stepfunctions_backends

from grpc_edge.reconciler import Reconciler
from order_saga.db import Database
from order_saga.order_service import OrderService
from order_saga.payment_gateway import HttpGateway
from order_saga.settings import Settings
from order_saga.steps.payment import process_payment
from order_saga.watchdog import SagaWatchdog, WatchdogOutcome
from order_saga.workflow import execution_arn_for
from tests.support.data import OrderFactory, query
from tests.support.gateway import books

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's
ROLE = f"arn:aws:iam::{ACCOUNT}:role/states"
# The machines' definitions do not matter here: moto records executions without running them.
WAITING = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}})


@dataclass
class Aws:
    sfn: Any
    sqs: Any
    saga_arn: str
    cancellation_arn: str
    notification_queue_url: str
    dlq_url: str

    def executions(self) -> list[str]:
        found = self.sfn.list_executions(stateMachineArn=self.saga_arn)["executions"]
        return [execution["name"] for execution in found]

    def queued_notices(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.notification_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        saga, cancellation = (
            sfn.create_state_machine(name=name, definition=WAITING, roleArn=ROLE)["stateMachineArn"]
            for name in ("OrderSaga", "OrderCancellation")
        )
        yield Aws(
            sfn,
            sqs,
            saga,
            cancellation,
            sqs.create_queue(QueueName="notifications")["QueueUrl"],
            sqs.create_queue(QueueName="compensation-dlq")["QueueUrl"],
        )


WatchdogFactory = Callable[..., SagaWatchdog]


@pytest.fixture
def watchdog(
    aws: Aws, settings: Settings, redis_client: "redis.Redis", gateway: HttpGateway
) -> WatchdogFactory:
    """Builds the watchdog as the SagaWatchdog function does (each with its own connection)."""

    def build(**overrides: Any) -> SagaWatchdog:
        wiring: dict[str, Any] = {
            "stepfunctions": aws.sfn,
            "saga_arn": aws.saga_arn,
            "cancellation_arn": aws.cancellation_arn,
            "notification_queue_url": aws.notification_queue_url,
            "compensation_dlq_url": aws.dlq_url,
        } | overrides
        return SagaWatchdog(Database(settings), redis_client, gateway, sqs=aws.sqs, **wiring)

    return build


@pytest.fixture
def order_id(database: Database, new_order: OrderFactory, aws: Aws) -> str:
    """A PENDING order stored with its execution's ARN, as the edge stores it before StartExecution."""
    order_id = new_order()
    with database.transaction() as cursor:
        cursor.execute(
            "UPDATE orders SET execution_arn = %s WHERE order_id = %s",
            (execution_arn_for(aws.saga_arn, order_id), order_id),
        )
    return order_id


def acted(outcomes: list[WatchdogOutcome]) -> list[tuple[str, str, str]]:
    return [(o.order_id, o.action, o.status) for o in outcomes]


def status(database: Database, order_id: str) -> str:
    [row] = query(database, "SELECT status FROM orders WHERE order_id = %s", order_id)
    return str(row["status"])


def test_the_sweep_starts_an_order_whose_saga_never_started_and_does_not_fail_it(
    database: Database, gateway: HttpGateway, aws: Aws, watchdog: WatchdogFactory, order_id: str
) -> None:
    # Given an order stored by the edge whose StartExecution was refused for longer than the grace
    sweeper = watchdog()
    # When the watchdog's sweep runs, twice
    first, second = sweeper.settle_stuck(grace_seconds=0), sweeper.settle_stuck(grace_seconds=0)
    # Then the first started its saga under the order's id, and the second found it running
    assert acted(first) == [(order_id, "started", "PENDING")]
    assert [(o.action, o.execution_status) for o in second] == [("none", "RUNNING")]
    assert aws.executions() == [order_id]
    # and nothing was compensated, failed or told: the order waits for its saga
    assert status(database, order_id) == "PENDING"
    assert query(database, "SELECT 1 FROM payments WHERE order_id = %s", order_id) == []
    assert books(gateway, order_id) == (0, 0)
    assert aws.queued_notices() == 0
    assert query(database, "SELECT step, status FROM saga_log WHERE saga_id = %s", order_id) == [
        {"step": "SagaWatchdog", "status": "STARTED"}
    ]


def test_two_reconcilers_at_once_start_a_never_started_order_once(
    database: Database,
    settings: Settings,
    redis_client: "redis.Redis",
    aws: Aws,
    watchdog: WatchdogFactory,
    order_id: str,
) -> None:
    # Given an order whose saga never started, young enough that the orphan pass leaves it to
    # the watchdog's part of the pass

    def edge_task() -> Reconciler:
        orders = OrderService(
            lambda: Database(settings),
            redis_client,
            aws.sfn,
            saga_arn=aws.saga_arn,
            cancellation_arn=aws.cancellation_arn,
        )
        sweeper = watchdog()
        return Reconciler(orders, sweeper, interval_seconds=0, grace_seconds=3600, watchdog_grace_seconds=0)

    reconcilers = [edge_task(), edge_task()]
    start = threading.Barrier(2, timeout=60)

    def reconcile(reconciler: Reconciler) -> list[tuple[str, str, str]]:
        start.wait()
        return acted(reconciler.run_once().settled)

    # When two edge tasks run their pass at the same time (released together)
    with ThreadPoolExecutor(2) as pool:
        passes = list(pool.map(reconcile, reconcilers))
    # Then its saga was started once (a second StartExecution of the same name starts nothing),
    # and no pass failed it
    assert aws.executions() == [order_id]
    assert all(done in ([], [(order_id, "started", "PENDING")]) for done in passes)
    assert status(database, order_id) == "PENDING"


def test_a_start_still_refused_leaves_the_order_pending_for_the_next_sweep(
    database: Database, gateway: HttpGateway, aws: Aws, watchdog: WatchdogFactory, order_id: str
) -> None:
    # Given an order whose saga never started, and a watchdog whose StartExecution is refused
    # (its saga ARN names no state machine, as after a deploy that broke the wiring)
    refused = watchdog(saga_arn=aws.saga_arn + "-gone")
    # When its sweep runs
    outcomes = refused.settle_stuck(grace_seconds=0)
    # Then the order is left PENDING, neither compensated nor failed, for the next sweep
    assert outcomes == []
    assert (status(database, order_id), aws.executions(), books(gateway, order_id)) == ("PENDING", [], (0, 0))
    # which, with StartExecution answering again, starts it
    assert acted(watchdog().settle_stuck(0)) == [(order_id, "started", "PENDING")]


def test_an_order_its_saga_touched_is_not_started_again_but_ended(
    database: Database, gateway: HttpGateway, aws: Aws, watchdog: WatchdogFactory, order_id: str
) -> None:
    # Given an order charged by its saga, whose execution is nowhere (asked twice)
    process_payment(database, gateway, order_id)
    # When the watchdog's sweep runs
    outcomes = watchdog().settle_stuck(grace_seconds=0)
    # Then no saga is started for it: its charge is refunded and the order ends FAILED
    assert acted(outcomes) == [(order_id, "settled", "FAILED")]
    assert aws.executions() == []
    assert books(gateway, order_id) == (1, 1)


def test_an_execution_pending_a_redrive_is_open(
    database: Database, gateway: HttpGateway, aws: Aws, watchdog: WatchdogFactory, order_id: str
) -> None:
    # Given a charged order whose execution failed and was redriven: Step Functions reports it
    # PENDING_REDRIVE until it runs again (moto cannot redrive; its record is set so)
    process_payment(database, gateway, order_id)
    arn = aws.sfn.start_execution(stateMachineArn=aws.saga_arn, name=order_id)["executionArn"]
    stepfunctions_backends[ACCOUNT][REGION].describe_execution(arn).status = "PENDING_REDRIVE"
    # When the watchdog looks at the order
    outcome = watchdog().settle(order_id)
    # Then it leaves the order to its execution: nothing refunded, nothing failed
    assert (outcome.action, outcome.execution_status) == ("none", "PENDING_REDRIVE")
    assert (status(database, order_id), books(gateway, order_id)) == ("PENDING", (1, 0))


def test_a_not_found_for_a_just_created_execution_is_asked_again_before_acting(
    database: Database, gateway: HttpGateway, aws: Aws, watchdog: WatchdogFactory, order_id: str
) -> None:
    # Given a charged order whose execution was just created, so that DescribeExecution (eventually
    # consistent) first answers "does not exist": the execution becomes visible right after
    process_payment(database, gateway, order_id)
    answers: list[str] = []

    def visible_after_the_first_answer(parsed: dict[str, Any], **_: Any) -> None:
        answers.append(parsed.get("Error", {}).get("Code", parsed.get("status")))
        if len(answers) == 1:
            boto3.client("stepfunctions", region_name=REGION).start_execution(
                stateMachineArn=aws.saga_arn, name=order_id
            )

    aws.sfn.meta.events.register("after-call.stepfunctions.DescribeExecution", visible_after_the_first_answer)
    # When the watchdog looks at the order
    outcome = watchdog().settle(order_id)
    # Then it asked again, found the execution running, and left the order to it
    assert answers == ["ExecutionDoesNotExist", "RUNNING"]
    assert (outcome.action, outcome.execution_status) == ("none", "RUNNING")
    assert (status(database, order_id), books(gateway, order_id)) == ("PENDING", (1, 0))
