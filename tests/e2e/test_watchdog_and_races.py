"""The saga watchdog as AWS runs it, and the races at the saga's end, on the real local stack.

The watchdog is the SagaWatchdog function, invoked through the stack's Lambda endpoint (the local
invoker runs its handler) with what AWS sends it: the "Step Functions Execution Status Change"
event of an execution that failed, timed out or was aborted (built from the execution itself), or
the schedule's sweep. Orders come in through the edge. A race is decided by holding a step.
"""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from order_ops import executions
from order_saga.functions import function
from order_saga.manifest import LOCAL_ENVIRONMENT
from order_saga.workflow import unqualified_arn
from tests.support.stack import HAPPY_PATH, INITIAL, Customer, LocalStack, wait_until

# Seconds an OrderSaga execution may run in the tests that make one time out: far less than a
# held step waits for its release (ProcessPayment's function timeout), so it times out there.
SHORT_EXECUTION_TIMEOUT = 1


def status_change(stack: LocalStack, execution_arn: str) -> dict[str, Any]:
    """EventBridge's "Step Functions Execution Status Change" event of a closed execution."""
    execution = stack.sfn.describe_execution(executionArn=execution_arn)
    stopped = execution.get("stopDate") or datetime.now(UTC)  # moto gives a TIMED_OUT one none
    return {
        "version": "0",
        "id": f"event-{execution['name']}",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": execution_arn.split(":")[4],
        "time": stopped.isoformat(),
        "region": stack.aws.region,
        "resources": [execution_arn],
        "detail": {
            "executionArn": execution_arn,
            "stateMachineArn": execution["stateMachineArn"],
            "name": execution["name"],
            "status": execution["status"],
            "startDate": int(execution["startDate"].timestamp() * 1000),
            "stopDate": int(stopped.timestamp() * 1000),
            "input": execution.get("input"),
            "output": execution.get("output"),
        },
    }


def invoke_watchdog(stack: LocalStack, event: dict[str, Any]) -> list[dict[str, Any]]:
    """What the SagaWatchdog function settled, invoked as EventBridge or the schedule invokes it."""
    name = function("SagaWatchdog").deployed_name(LOCAL_ENVIRONMENT)  # as EventBridge's target names it
    reply = stack.lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    answer = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, answer
    settled: list[dict[str, Any]] = answer["settled"]
    return settled


def wait_for_status(stack: LocalStack, execution_arn: str, status: str) -> None:
    wait_until(
        lambda: stack.sfn.describe_execution(executionArn=execution_arn)["status"] == status,
        f"{execution_arn} to be {status}",
    )


@pytest.fixture
def short_saga_timeout(stack: LocalStack) -> Iterator[None]:
    """The stack's OrderSaga with a TimeoutSeconds of SHORT_EXECUTION_TIMEOUT: a version of its own
    that the alias routes to, rolled back (the alias to the deployed version) after."""
    deployed = stack.live_version(stack.saga_arn)
    definition = stack.sfn.describe_state_machine(stateMachineArn=deployed)["definition"]
    short = json.loads(definition) | {"TimeoutSeconds": SHORT_EXECUTION_TIMEOUT}
    published = stack.sfn.update_state_machine(
        stateMachineArn=unqualified_arn(stack.saga_arn), definition=json.dumps(short), publish=True
    )
    stack.route(stack.saga_arn, published["stateMachineVersionArn"])
    yield
    stack.route(stack.saga_arn, deployed)
    stack.sfn.update_state_machine(stateMachineArn=unqualified_arn(stack.saga_arn), definition=definition)


def timed_out_in_process_payment(stack: LocalStack, customer: Customer) -> tuple[str, str]:
    """An order whose saga timed out while ProcessPayment was held (still held): its id and ARN."""
    stack.fault("ProcessPayment", "hold")
    order_id = customer.create({"sku-1": 1}).order_id
    execution = stack.execution_of(order_id)
    wait_for_status(stack, execution, "TIMED_OUT")
    return order_id, execution


def failed_leaving_pending(stack: LocalStack, customer: Customer) -> tuple[str, str]:
    """An order whose saga ended FAILED with the order still PENDING: its confirmation failed, its
    compensations succeeded, and neither MarkOrderFailed nor MarkNeedsAttention could run."""
    for step in ("ConfirmOrder", "MarkOrderFailed", "MarkNeedsAttention"):
        stack.fault(step, "error", error_type="InjectedFault")
    order_id = customer.create({"sku-1": 2}).order_id
    path = stack.finish(order_id)
    assert (path.status, path.states()[-2:]) == ("FAILED", ["MarkNeedsAttention", "SagaNeedsAttention"])
    assert stack.order(order_id)["status"] == "PENDING"
    assert stack.payment(order_id)["status"] == "REFUNDED"  # type: ignore[index]
    assert stack.stock() == INITIAL
    return order_id, path.arn


@pytest.mark.usefixtures("short_saga_timeout")
def test_an_execution_that_timed_out_fails_its_pending_order_and_tells_the_customer(
    stack: LocalStack, customer: Customer
) -> None:
    # Given an order whose saga timed out while ProcessPayment was held: the order is PENDING,
    # nothing was charged, and nothing in the saga will ever end it
    order_id, execution = timed_out_in_process_payment(stack, customer)
    assert stack.order(order_id)["status"] == "PENDING"
    assert stack.payment(order_id) is None
    # When EventBridge invokes the SagaWatchdog function with the execution's status change
    settled = invoke_watchdog(stack, status_change(stack, execution))
    # Then the watchdog read the execution TIMED_OUT and ended the order FAILED, and the customer
    # is told
    assert settled == [
        {
            "order_id": order_id,
            "action": "settled",
            "status": "FAILED",
            "execution_status": "TIMED_OUT",
            "owed": [],
        }
    ]
    assert stack.order(order_id)["status"] == "FAILED"
    assert customer.get(order_id).status == pb.ORDER_STATUS_FAILED
    assert stack.payment(order_id) == {"status": "REFUNDED", "amount": Decimal("0")}  # nothing taken
    assert stack.books(order_id)[0] == 0
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"We could not complete your order {order_id}"
    assert stack.stock() == INITIAL
    # (the fixture releases the held ProcessPayment: it finds the refund the watchdog recorded and
    # charges nothing)


def test_a_failed_execution_that_left_its_order_pending_is_failed_by_the_watchdog(
    stack: LocalStack, customer: Customer
) -> None:
    # Given a saga that failed and left its order PENDING (compensated, but neither ended FAILED
    # nor flagged)
    order_id, execution = failed_leaving_pending(stack, customer)
    # When EventBridge invokes the SagaWatchdog function with the execution's status change
    settled = invoke_watchdog(stack, status_change(stack, execution))
    # Then the order is FAILED, nothing more is refunded, and the customer is told
    assert [(o["order_id"], o["action"], o["status"], o["execution_status"]) for o in settled] == [
        (order_id, "settled", "FAILED", "FAILED")
    ]
    assert stack.order(order_id)["status"] == "FAILED"
    assert (stack.books(order_id)[0], stack.payment(order_id)["status"]) == (1, "REFUNDED")  # type: ignore[index]
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"We could not complete your order {order_id}"
    # and the same event again (EventBridge delivers at least once) changes nothing
    assert invoke_watchdog(stack, status_change(stack, execution)) == []


def test_the_schedules_sweep_settles_an_order_whose_status_change_never_arrived(
    stack: LocalStack, customer: Customer
) -> None:
    # Given a saga that failed and left its order PENDING, and no status change event for it
    order_id, _ = failed_leaving_pending(stack, customer)
    # When the schedule invokes the SagaWatchdog function's sweep
    settled = invoke_watchdog(stack, {"sweep_older_than_seconds": 0.001})
    # Then the sweep found the order and ended it FAILED, and the customer is told
    assert [(o["order_id"], o["action"], o["status"], o["execution_status"]) for o in settled] == [
        (order_id, "settled", "FAILED", "FAILED")
    ]
    assert stack.order(order_id)["status"] == "FAILED"
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"We could not complete your order {order_id}"
    # and the next sweep finds nothing left to do
    assert invoke_watchdog(stack, {"sweep_older_than_seconds": 0.001}) == []


def cancelled_before_the_saga_ended(stack: LocalStack, customer: Customer) -> tuple[str, str]:
    """An order cancelled through the edge after ConfirmOrder committed and before its saga ended,
    then the saga let go and waited for: the order's id and its saga's ARN.

    The first ConfirmOrder commits but its answer is lost; its retry is held while the customer
    cancels, the cancellation machine ends and its notice is sent; then the retry goes on."""
    stack.fault("ConfirmOrder", "timeout", times=1)
    stack.fault("ConfirmOrder", "hold")
    order_id = customer.create({"sku-1": 2}).order_id
    wait_until(lambda: stack.order(order_id)["status"] == "CONFIRMED", f"{order_id} to be CONFIRMED")
    saga = stack.execution_of(order_id)
    assert customer.cancel(order_id).status == pb.ORDER_STATUS_CANCELLING
    assert stack.finish(order_id, cancellation=True).status == "SUCCEEDED"
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"Your order {order_id} is cancelled"
    assert stack.sfn.describe_execution(executionArn=saga)["status"] == "RUNNING"
    stack.clear_faults("ConfirmOrder")
    stack.wait(saga)
    return order_id, saga


def test_a_cancel_after_the_confirmation_committed_but_before_the_saga_ended_cancels_the_order(
    stack: LocalStack, customer: Customer
) -> None:
    # Given a saga whose ConfirmOrder committed, still running (its ConfirmOrder retry held)
    # When the customer cancels through the edge, the cancellation machine ends, and the saga
    # then goes on to its end
    order_id, saga = cancelled_before_the_saga_ended(stack, customer)
    # Then the order is CANCELLED: refunded once and its stock back
    assert stack.order(order_id)["status"] == "CANCELLED"
    assert customer.get(order_id).status == pb.ORDER_STATUS_CANCELLED
    assert (stack.books(order_id)[0], stack.payment(order_id)["status"]) == (1, "REFUNDED")  # type: ignore[index]
    assert stack.stock() == INITIAL
    # and the saga that lost the race ends as a confirmed saga does, flagging nothing (its
    # ConfirmOrder retry is answered CONFIRMED from the step's idempotency record)
    path = executions.path_of(stack.sfn, saga)
    assert (path.status, path.states()) == ("SUCCEEDED", HAPPY_PATH)
    assert [m for m in stack.dlq_messages() if m["order_id"] == order_id] == []
    assert invoke_watchdog(stack, {"sweep_older_than_seconds": 0.001}) == []


def test_a_customer_told_the_order_is_cancelled_is_not_told_afterwards_that_it_is_confirmed(
    stack: LocalStack, customer: Customer
) -> None:
    # Given an order cancelled after ConfirmOrder committed, the customer told it is cancelled
    # When the saga that lost the race ends, and the notification queue is drained
    order_id, _ = cancelled_before_the_saga_ended(stack, customer)
    wait_until(lambda: notices_in_flight(stack) == 0, "the notification queue to be drained")
    # Then the only mail about the order is the cancellation notice
    assert [mail["subject"] for mail in stack.emails_about(order_id)] == [
        f"Your order {order_id} is cancelled"
    ]


def test_a_confirmation_whose_answer_was_lost_then_a_cancel_ends_cancelled_and_never_flagged(
    stack: LocalStack, customer: Customer
) -> None:
    # Given an order whose first ConfirmOrder commits but loses its answer, and whose retry is
    # held while the customer cancels and the cancellation machine ends (refund, notice)
    with stack.held("ProcessPayment"):
        order_id = customer.create({"sku-1": 2}).order_id
        stack.fault("ConfirmOrder", "timeout", order_id=order_id, times=1)
    with stack.held("ConfirmOrder"):
        wait_until(lambda: stack.order(order_id)["status"] == "CONFIRMED", f"{order_id} to be CONFIRMED")
        assert customer.cancel(order_id).status == pb.ORDER_STATUS_CANCELLING
        assert stack.finish(order_id, cancellation=True).status == "SUCCEEDED"
        # and the step's result is gone from Redis (evicted): the retry reaches MySQL
        stack.forget_step_results("confirm_order")
    # When the saga's ConfirmOrder retry goes on, and the saga ends
    path = stack.finish(order_id)
    # Then the retry answered the confirmation it had made, and the saga ended as a confirmed one
    assert (path.status, path.states()) == ("SUCCEEDED", HAPPY_PATH)
    # and the order is CANCELLED, refunded once, its stock back, never flagged
    assert stack.order(order_id)["status"] == "CANCELLED"
    assert stack.books(order_id) == (1, 1)
    assert stack.stock() == INITIAL
    assert "NEEDS_ATTENTION" not in {
        row["status"] for row in stack.query("SELECT status FROM saga_log WHERE saga_id = %s", order_id)
    }
    assert [m for m in stack.dlq_messages() if m["order_id"] == order_id] == []
    # and the customer got one notice: the cancellation (the late confirmation was STALE)
    wait_until(lambda: notices_in_flight(stack) == 0, "the notification queue to be drained")
    assert [mail["subject"] for mail in stack.emails_about(order_id)] == [
        f"Your order {order_id} is cancelled"
    ]


def notices_in_flight(stack: LocalStack) -> int:
    """Messages in the notification queue, waiting or being handled."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = stack.sqs.get_queue_attributes(QueueUrl=stack.notification_queue_url, AttributeNames=names)
    return sum(int(found["Attributes"][name]) for name in names)
