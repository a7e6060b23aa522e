"""Compound faults on the real local stack: no order is ever left holding money or stock.

Each test makes faults combine the way a reviewer or an operator did, then checks the books: the
gateway server's books (charges and refunds of the order), the payments row, the
reservations and stock, and the order's final status. Orders are created through the running edge,
which starts their sagas; a fault aimed at one order is put in place while its first step is held.

The reconciler's pass, which runs the saga watchdog over what an execution left behind, is built
here as the edge builds it and run once, with no grace period: the edge's own pass waits until an
order is a minute old, and its subject here is what one pass does, not the edge's timer.
"""

import uuid
from decimal import Decimal
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config

from devstack.issuer.tokens import CUSTOMER_APP_CLIENT
from devstack.services import MariaDB
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.reconciler import Reconciler
from order_saga.db import Database
from order_saga.errors import WorkflowUnavailable
from order_saga.models import Actor
from order_saga.order_requests import NewOrder
from order_saga.order_service import OrderService
from order_saga.payment_gateway import HttpGateway
from order_saga.watchdog import SagaWatchdog
from tests.support.stack import (
    HAPPY_PATH,
    INITIAL,
    Customer,
    LocalStack,
    states,
    transient_retries,
    wait_until,
)

COMPENSATE = ["Compensate", "RefundPayment", "ReleaseStock", "CompensationOutcome"]
FAILED_PATH = [*COMPENSATE, "MarkOrderFailed", "SendFailureAlert", "OrderFailed"]


def order_service(stack: LocalStack, stepfunctions: Any | None = None) -> OrderService:
    return OrderService(
        lambda: Database(stack.settings),
        redis.Redis.from_url(stack.settings.redis_url, decode_responses=True),
        stepfunctions or stack.sfn,
        saga_arn=stack.saga_arn,
        cancellation_arn=stack.cancellation_arn,
    )


def reconciler(stack: LocalStack, gateway: HttpGateway | None = None) -> Reconciler:
    """The edge's reconciler, with no grace period: every order an execution left is due now."""
    watchdog = SagaWatchdog(
        Database(stack.settings),
        redis.Redis.from_url(stack.settings.redis_url, decode_responses=True),
        gateway or stack.gateway,
        stack.sfn,
        stack.sqs,
        saga_arn=stack.saga_arn,
        cancellation_arn=stack.cancellation_arn,
        notification_queue_url=stack.notification_queue_url,
        compensation_dlq_url=stack.dlq_url,
    )
    return Reconciler(
        order_service(stack), watchdog, interval_seconds=0, grace_seconds=60, watchdog_grace_seconds=0
    )


def unreachable_stepfunctions(stack: LocalStack) -> Any:
    """A Step Functions client whose every call fails to connect (StartExecution refused)."""
    return boto3.client(
        "stepfunctions",
        endpoint_url="http://127.0.0.1:9",
        region_name=stack.aws.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )


def cancelled_without_a_start(stack: LocalStack) -> str:
    """A CONFIRMED order (created through the edge), cancelled through an order service built as
    the edge builds it but whose StartExecution fails."""
    order_id = stack.customer().create({"sku-1": 1}).order_id
    assert stack.finish(order_id).status == "SUCCEEDED"
    with pytest.raises(WorkflowUnavailable):
        order_service(stack, unreachable_stepfunctions(stack)).cancel_order(
            Actor("user-1", CUSTOMER_APP_CLIENT), order_id, "changed my mind"
        )
    return order_id


def test_an_order_whose_start_was_refused_past_the_watchdogs_grace_is_started_once_and_confirms(
    stack: LocalStack, customer: Customer
) -> None:
    # Given an order stored by an edge whose StartExecution is refused (Step Functions unreachable)
    request = NewOrder(str(uuid.uuid4()), [("sku-1", 1)], "tok_visa", "buyer@example.com")
    refusing = order_service(stack, unreachable_stepfunctions(stack))
    order_id = refusing.create_order(Actor("user-1", CUSTOMER_APP_CLIENT), request).order_id
    assert stack.order(order_id)["status"] == "PENDING"
    # When the reconciler makes two passes once the watchdog's grace (none) has passed, before
    # the orphan pass's own minute has
    passes = [reconciler(stack).run_once(), reconciler(stack).run_once()]
    # Then the watchdog started its saga once, never failing it, and the order confirms
    assert [[(o.order_id, o.action) for o in done.settled] for done in passes] == [
        [(order_id, "started")],
        [],
    ]
    path = stack.finish(order_id)
    assert (path.status, states(path)) == ("SUCCEEDED", HAPPY_PATH)
    found = stack.sfn.list_executions(stateMachineArn=stack.saga_arn)["executions"]
    assert [execution["name"] for execution in found if execution["name"] == order_id] == [order_id]
    assert customer.get(order_id).status == pb.ORDER_STATUS_CONFIRMED
    assert stack.books(order_id) == (1, 0)
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"Your order {order_id} is confirmed"


def reservations(stack: LocalStack, order_id: str) -> list[str]:
    rows = stack.query("SELECT status FROM inventory_reservations WHERE order_id = %s", order_id)
    return [row["status"] for row in rows]


def entered(stack: LocalStack, execution_arn: str, state: str) -> bool:
    events = stack.sfn.get_execution_history(executionArn=execution_arn)["events"]
    return any(e.get("stateEnteredEventDetails", {}).get("name") == state for e in events)


def test_a_charge_whose_answer_is_lost_is_refunded_exactly_once(
    stack: LocalStack, customer: Customer
) -> None:
    # Given a gateway that charges and then loses its answer, on every attempt
    order_id = customer.create({"sku-1": 2}, token="tok_lostAnswer").order_id
    # When the saga runs
    path = stack.finish(order_id)
    # Then ProcessPayment was retried through its outage budget, 10 times (one charge under its
    # key), then compensated
    assert (path.status, states(path)) == ("FAILED", ["ProcessPayment", *FAILED_PATH])
    lost = ["PaymentGatewayUnavailable"] * 10
    assert path.transitions == 18 + transient_retries(path, *lost)
    # and the gateway's ledger shows the charge refunded exactly once: no money kept
    assert stack.books(order_id) == (1, 1)
    assert stack.payment(order_id) == {"status": "REFUNDED", "amount": Decimal("19.98")}
    assert stack.order(order_id)["status"] == "FAILED"
    assert stack.stock() == INITIAL


def test_a_charge_recorded_while_the_database_is_down_is_refunded(
    stack: LocalStack, customer: Customer, database_server: MariaDB
) -> None:
    # Given a charge the gateway made whose answer reaches ProcessPayment only once the database is
    # down (the gateway holds the answer: its intent committed, its charge landed)
    stack.gateway_server.add_fault({"kind": "hold", "path": "/v1/charges", "method": "POST", "count": 1})
    try:
        order_id = customer.create({"sku-1": 1}).order_id
        wait_until(lambda: stack.books(order_id)[0], "the charge to land (its answer held)")
        database_server.stop()
    finally:
        stack.gateway_server.clear_faults()  # the charge's answer reaches ProcessPayment
    execution = stack.execution_of(order_id)
    # When ProcessPayment cannot record it and the compensation keeps retrying, then the database
    # comes back
    wait_until(lambda: entered(stack, execution, "RefundPayment"), "the compensation")
    database_server.start()
    stack.database.close()  # its connection died with the server
    path = stack.wait(execution)
    # Then the charge was found by its key and refunded: the order FAILED with no money kept
    [payment] = [visit for visit in path.visits if visit.name == "ProcessPayment"]
    assert "DatabaseUnavailable" in [error.split(":")[0] for error in payment.errors], payment.errors
    assert (path.status, states(path)) == ("FAILED", ["ProcessPayment", *FAILED_PATH])
    assert stack.books(order_id) == (1, 1)
    assert stack.payment(order_id) == {"status": "REFUNDED", "amount": Decimal("9.99")}
    assert stack.order(order_id)["status"] == "FAILED"
    assert stack.stock() == INITIAL


def test_a_refund_that_keeps_failing_does_not_hold_the_stock(stack: LocalStack, customer: Customer) -> None:
    # Given a paid, reserved order whose confirmation fails, and a refund that keeps failing
    with stack.held("ProcessPayment"):
        order_id = customer.create({"sku-1": 2}).order_id
        stack.fault("ConfirmOrder", "error", order_id, error_type="InjectedFault")
        stack.fault("RefundPayment", "error", order_id, error_type="InjectedFault")
    # When the saga compensates
    path = stack.finish(order_id)
    # Then the stock is released anyway, and the order is flagged owing exactly the refund
    assert (path.status, path.error) == ("FAILED", "CompensationFailed")
    assert states(path) == [  # the Parallel's branch states in name order
        "ProcessPayment",
        "ReserveStock",
        "ConfirmOrder",
        "Compensate",
        "RefundPayment",
        "RefundPaymentOwed",
        "ReleaseStock",
        "CompensationOutcome",
        "CompensationFailed",
        "MarkNeedsAttention",
        "SagaNeedsAttention",
    ]
    assert stack.stock() == INITIAL
    assert reservations(stack, order_id) == ["RELEASED"]
    [row] = stack.query(
        "SELECT status, owed_compensations, reason_code FROM orders WHERE order_id = %s", order_id
    )
    assert row == {
        "status": "NEEDS_ATTENTION",
        "owed_compensations": "RefundPayment",
        "reason_code": "UNDER_REVIEW",
    }
    assert stack.payment(order_id)["status"] == "SUCCESS"  # type: ignore[index]
    assert stack.books(order_id) == (1, 0)  # the refund owed, flagged
    [message] = [body for body in stack.dlq_messages() if body["order_id"] == order_id]
    owed = {step: entry["owed"] for step, entry in message["context"]["compensations"].items()}
    assert owed == {"RefundPayment": True, "ReleaseStock": False}


def test_an_execution_stopped_mid_saga_is_settled_by_one_reconciler_pass(
    stack: LocalStack, customer: Customer
) -> None:
    # Given a saga that has charged, and whose ReserveStock is on its way (held before it runs)
    with stack.held("ReserveStock"):
        order_id = customer.create({"sku-2": 2}).order_id
        stack.wait_for_state(order_id, "ReserveStock")
        execution = stack.execution_of(order_id)
        assert stack.payment(order_id)["status"] == "SUCCESS"  # type: ignore[index]
        # When an operator stops the execution there (moto reports ABORTED once the Task in flight
        # returns: the stock is then reserved, and nobody will release it but the watchdog)
        stack.sfn.stop_execution(executionArn=execution, error="Operator", cause="stopped from the console")
    wait_until(lambda: stack.sfn.describe_execution(executionArn=execution)["status"] == "ABORTED", "ABORTED")
    assert reservations(stack, order_id) == ["RESERVED"]
    # and the reconciler makes one pass
    done = reconciler(stack).run_once()
    # Then the order is FAILED with no money kept and no stock held
    assert [(o.order_id, o.action, o.execution_status) for o in done.settled] == [
        (order_id, "settled", "ABORTED")
    ]
    assert stack.order(order_id)["status"] == "FAILED"
    assert stack.books(order_id) == (1, 1)
    assert stack.payment(order_id)["status"] == "REFUNDED"  # type: ignore[index]
    assert reservations(stack, order_id) == ["RELEASED"]
    assert stack.stock() == INITIAL
    # and a second pass finds nothing left to do
    assert reconciler(stack).run_once().settled == []


def test_an_execution_stopped_after_ending_its_order_gets_its_notice_from_the_watchdog(
    stack: LocalStack, customer: Customer
) -> None:
    # Given a declined order whose saga is held in MarkOrderFailed
    with stack.held("MarkOrderFailed"):
        order_id = customer.create({"sku-1": 1}, token="tok_chargeDeclined").order_id
        stack.wait_for_state(order_id, "MarkOrderFailed")
        # When an operator stops the execution there (moto ends it once the held step returns:
        # the order is FAILED, and SendFailureAlert never runs)
        execution = stack.execution_of(order_id)
        stack.sfn.stop_execution(executionArn=execution, error="Operator", cause="stopped from the console")
    wait_until(lambda: stack.sfn.describe_execution(executionArn=execution)["status"] == "ABORTED", "ABORTED")
    assert stack.order(order_id)["status"] == "FAILED"
    assert not entered(stack, execution, "SendFailureAlert")
    # and the reconciler makes one pass
    done = reconciler(stack).run_once()
    # Then the watchdog queued the notice the execution owed, and the customer is told once
    assert [(o.action, o.execution_status) for o in done.settled if o.order_id == order_id] == [
        ("notified", "ABORTED")
    ]
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"We could not complete your order {order_id}"
    assert stack.books(order_id) == (0, 0)  # declined: never charged
    # and a second pass does not queue it again
    assert [o for o in reconciler(stack).run_once().settled if o.order_id == order_id] == []


def test_a_cancellation_whose_start_failed_ends_cancelled_after_the_reconciler(stack: LocalStack) -> None:
    # Given a CONFIRMED order the customer cancelled, whose cancellation machine could not start
    order_id = cancelled_without_a_start(stack)
    assert stack.order(order_id)["status"] == "CANCELLING"
    # and the reconciler makes one pass
    reconciler(stack).run_once()
    # Then the order is CANCELLED: refunded once, restocked, and the customer told
    assert stack.order(order_id)["status"] == "CANCELLED"
    assert stack.books(order_id) == (1, 1)
    assert stack.stock() == INITIAL
    wait_until(lambda: len(stack.emails_about(order_id)) == 2, "the cancellation notice")


def test_a_cancellation_flagged_before_its_machine_started_is_resolved_cancelled(stack: LocalStack) -> None:
    # Given a CONFIRMED order whose cancellation could not start, and whose refund the watchdog
    # could not make either (the gateway unreachable): flagged NEEDS_ATTENTION, owing the refund
    order_id = cancelled_without_a_start(stack)
    unreachable_gateway = HttpGateway("http://127.0.0.1:9", lambda _fresh: "sk_test_local", timeout=1)
    done = reconciler(stack, unreachable_gateway).run_once()
    assert [(o.action, o.owed) for o in done.settled if o.order_id == order_id] == [
        ("flagged", ["RefundPayment"])
    ]
    # When the operator resolves it once the gateway answers again
    code, resolved = stack.operator("attention", "resolve", order_id)
    # Then it ends as the customer asked: CANCELLED, refunded once, restocked, and told
    assert (code, resolved.strip().splitlines()[-1]) == (0, f"{order_id}: CANCELLED"), resolved
    assert stack.books(order_id) == (1, 1)
    assert stack.stock() == INITIAL
    mails = stack.wait_for_emails(order_id, count=2)
    assert f"Your order {order_id} is cancelled" in [mail["subject"] for mail in mails]


def test_an_operator_lists_shows_and_resolves_an_order_that_needs_attention(
    stack: LocalStack, customer: Customer
) -> None:
    # Given an order flagged NEEDS_ATTENTION, owing its refund (the gateway refused it)
    with stack.held("ProcessPayment"):
        order_id = customer.create({"sku-1": 1}).order_id
        stack.fault("ConfirmOrder", "error", order_id, error_type="InjectedFault")
        stack.fault("RefundPayment", "error", order_id, error_type="InjectedFault")
    assert stack.finish(order_id).error == "CompensationFailed"
    assert stack.books(order_id) == (1, 0)
    # When the operator lists and shows what needs attention
    code, listed = stack.operator("attention", "list")
    assert code == 0, listed
    assert f"{order_id}  user-1  9.99 EUR  owes: RefundPayment" in listed
    code, shown = stack.operator("attention", "show", order_id)
    assert code == 0, shown
    assert shown.splitlines()[:2] == [f"{order_id}: NEEDS_ATTENTION (UNDER_REVIEW)", "  owes: RefundPayment"]
    # and resolves it once the gateway answers again
    code, resolved = stack.operator("attention", "resolve", order_id)
    # Then the refund is made, the order ends FAILED, and nothing needs attention any more
    assert (code, resolved.strip().splitlines()[-1]) == (0, f"{order_id}: FAILED"), resolved
    assert stack.payment(order_id)["status"] == "REFUNDED"  # type: ignore[index]
    assert stack.books(order_id) == (1, 1)
    assert stack.stock() == INITIAL
    assert "0 order(s) need attention" in stack.operator("attention", "list")[1]
