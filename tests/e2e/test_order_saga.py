"""The order saga and the cancellation machine, run for real on the local stack.

Each test acts as a client does: CreateOrder and CancelOrder through the running edge, which
starts the executions, then waits for them to end and checks the database, the messages and the
execution's path. The tests named `test_direct_start_...` write the PENDING order and start its
execution themselves: their subject is the saga under a fault that must be in place before the
first step runs, not the edge. The expected state transitions per path are the figures of
docs/state-transitions.md.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import grpc
import pytest

from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from tests.support.data import CATALOG
from tests.support.stack import (
    CANCELLED_PATH,
    COMPENSATE,
    COMPENSATED_PATH,
    HAPPY_PATH,
    INITIAL,
    TERMINAL,
    Customer,
    LocalStack,
    states,
    transient_retries,
)


def assert_consistent(stack: LocalStack, order_ids: list[str]) -> None:
    """The saga's promise: every order terminal, no money kept and no stock held unless CONFIRMED.
    The money is checked where it is, in the gateway's books: a CONFIRMED order charged once and
    not refunded, any other either never charged or its charge refunded exactly once."""
    committed: dict[str, int] = dict.fromkeys(CATALOG, 0)
    for order_id in order_ids:
        order = stack.order(order_id)
        assert order["status"] in TERMINAL, order_id
        if order["status"] == "CONFIRMED":
            assert stack.books(order_id) == (1, 0), order_id
            assert stack.payment(order_id)["status"] == "SUCCESS", order_id  # type: ignore[index]
        else:
            assert stack.books(order_id) in {(0, 0), (1, 1)}, (order_id, stack.books(order_id))
        reservations = stack.query(
            "SELECT product_id, quantity, status FROM inventory_reservations WHERE order_id = %s", order_id
        )
        assert all(r["status"] != "RESERVED" for r in reservations), (order_id, reservations)
        for r in reservations:
            if r["status"] == "COMMITTED":
                assert order["status"] == "CONFIRMED", order_id
                committed[r["product_id"]] += r["quantity"]
    assert stack.stock() == {p: (stock - committed[p], 0) for p, (stock, _) in INITIAL.items()}


def test_a_good_order_is_confirmed_charged_once_its_stock_committed_and_mailed(
    stack: LocalStack, customer: Customer
) -> None:
    # Given a customer ordering 2 x sku-1 with a good card through the edge
    order = customer.create({"sku-1": 2})
    assert (order.status, order.total) == (pb.ORDER_STATUS_PENDING, "19.98")
    # When the saga the edge started runs, followed with WatchOrder until the stream ends
    statuses = customer.watch(order.order_id)
    path = stack.finish(order.order_id)
    # Then the order is CONFIRMED, charged once, its stock committed and nothing left reserved
    assert statuses[-1] == "CONFIRMED"
    assert (path.status, path.states()) == ("SUCCEEDED", HAPPY_PATH)
    assert path.transitions == 5 + transient_retries(path)
    assert stack.order(order.order_id)["status"] == "CONFIRMED"
    assert stack.payment(order.order_id) == {"status": "SUCCESS", "amount": Decimal("19.98")}
    assert stack.books(order.order_id) == (1, 0)  # charged once, kept
    assert stack.stock()["sku-1"] == (18, 0)
    # and the confirmation went out through the queue, its consumer and SES
    [mail] = stack.wait_for_emails(order.order_id)
    assert mail["subject"] == f"Your order {order.order_id} is confirmed"
    assert mail["destinations"]["ToAddresses"] == ["buyer@example.com"]
    assert stack.saga_steps(order.order_id) == [
        "CreateOrder",
        "ProcessPayment",  # the intent (CHARGING), committed before the gateway call
        "ProcessPayment",
        "ReserveStock",
        "ConfirmOrder",
        "SendOrderConfirmation",
    ]


def test_a_notice_whose_delivery_fails_is_received_again_and_sent_once(
    stack: LocalStack, customer: Customer
) -> None:
    # Given an order whose confirmation's first delivery to SendNotification will fail
    with stack.held("ProcessPayment"):
        order_id = customer.create({"sku-1": 1}).order_id
        stack.fault("SendNotification", "error", order_id, error_type="SESUnavailable", times=1)
    # When the saga confirms it and queues the notice
    assert stack.finish(order_id).status == "SUCCEEDED"
    # Then the queue gives the message again after its visibility timeout, and one mail goes out
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"Your order {order_id} is confirmed"
    assert "SendNotification" not in stack.faults_file.read_text()  # the failure did happen
    notices = stack.query("SELECT kind FROM notifications WHERE order_id = %s", order_id)
    assert notices == [{"kind": "ORDER_CONFIRMATION"}]


def test_a_declined_card_fails_the_order_without_charging_or_reserving(
    stack: LocalStack, customer: Customer
) -> None:
    order_id = customer.create({"sku-1": 2}, token="tok_chargeDeclined").order_id
    assert customer.watch(order_id)[-1] == "FAILED"
    path = stack.finish(order_id)
    assert (path.status, path.error) == ("FAILED", "PaymentDeclined")
    assert states(path) == ["ProcessPayment", *COMPENSATED_PATH]
    assert path.transitions == 8 + transient_retries(path)
    order = stack.order(order_id)
    assert order["status"] == "FAILED"
    assert order["failure_reason"] == "Your card was declined."
    assert stack.payment(order_id)["status"] == "FAILED"  # type: ignore[index]
    assert stack.books(order_id) == (0, 0)  # never charged
    assert stack.stock() == INITIAL
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"We could not complete your order {order_id}"


def test_direct_start_out_of_stock_refunds_and_fails(stack: LocalStack) -> None:
    # Given an order for 2 units of a product with 1 in stock, past the edge (which refuses the
    # obvious case itself), as when the last unit went between the edge's check and the saga
    assert stack.stock()["sku-3"] == (1, 0)
    order_id = stack.new_order({"sku-3": 2})
    path = stack.run(order_id)
    assert (path.status, path.error) == ("FAILED", "OutOfStock")
    assert states(path) == ["ProcessPayment", "ReserveStock", *COMPENSATED_PATH]
    assert path.transitions == 9 + transient_retries(path)
    assert stack.order(order_id)["status"] == "FAILED"
    assert stack.payment(order_id)["status"] == "REFUNDED"  # type: ignore[index]
    assert stack.books(order_id) == (1, 1)  # charged, refunded once
    assert stack.stock() == INITIAL
    assert len(stack.wait_for_emails(order_id)) == 1
    assert "RefundPayment" in stack.saga_steps(order_id)


def test_a_briefly_unavailable_gateway_is_retried_until_it_answers(
    stack: LocalStack, customer: Customer
) -> None:
    order_id = customer.create({"sku-2": 1}, token="tok_unavailable_2").order_id
    path = stack.finish(order_id)
    assert (path.status, path.states()) == ("SUCCEEDED", HAPPY_PATH)
    # 5 states + the 2 retries of the gateway's unavailability (and any transient one's)
    unavailable = ["PaymentGatewayUnavailable"] * 2
    assert path.transitions == 7 + transient_retries(path, *unavailable)
    assert stack.order(order_id)["status"] == "CONFIRMED"
    assert stack.books(order_id) == (1, 0)


# A fault at each forward step in turn. An `error` of any step and a `timeout` of ReserveStock are
# compensated; a timed-out ProcessPayment (its charge made, its answer lost: the committed intent
# makes asking again safe) and a timed-out ConfirmOrder (the pivot) are asked again and stand; a
# `duplicate` invocation changes nothing (steps are idempotent).
# (final order status, state transitions) per (step, fault)
FAULTS = {
    ("ProcessPayment", "error"): ("FAILED", 8),
    ("ProcessPayment", "timeout"): ("CONFIRMED", 6),
    ("ProcessPayment", "duplicate"): ("CONFIRMED", 5),
    ("ReserveStock", "error"): ("FAILED", 9),
    ("ReserveStock", "timeout"): ("FAILED", 9),
    ("ReserveStock", "duplicate"): ("CONFIRMED", 5),
    ("ConfirmOrder", "error"): ("FAILED", 10),
    ("ConfirmOrder", "timeout"): ("CONFIRMED", 6),
    ("ConfirmOrder", "duplicate"): ("CONFIRMED", 5),
}


# The cases whose fault a Retry answers by design: asked again once after the timeout.
ASKED_AGAIN = {("ProcessPayment", "timeout"), ("ConfirmOrder", "timeout")}


def test_direct_start_a_fault_at_each_step_in_turn_leaves_every_order_consistent(stack: LocalStack) -> None:
    # Given one order per (step, fault), each fault aimed at its own order, once (in place before
    # the execution starts, hence started directly)
    orders: dict[tuple[str, str], str] = {}
    for step, kind in FAULTS:
        order_id = stack.new_order({"sku-1": 1})
        orders[step, kind] = order_id
        extra: dict[str, Any] = {"error_type": "InjectedFault"} if kind == "error" else {}
        stack.fault(step, kind, order_id, times=1, **extra)
    # When all sagas run side by side (a timeout lasts the function's own timeout)
    with ThreadPoolExecutor(max_workers=len(orders)) as pool:
        paths = dict(zip(orders, pool.map(stack.run, orders.values()), strict=True))
    # Then each ended as expected, with the fault visible in its path, and the books balance.
    # Nine sagas on one product's row may meet a transient error the fault did not cause (a
    # deadlock the database resolves): its Retry adds transitions without changing the path.
    outcomes = {
        case: (
            stack.order(order_id)["status"],
            paths[case].transitions
            - transient_retries(paths[case], *["Sandbox.Timedout"] * (case in ASKED_AGAIN)),
        )
        for case, order_id in orders.items()
    }
    assert outcomes == FAULTS
    for (step, kind), path in paths.items():
        [visit] = [visit for visit in path.visits if visit.name == step]
        errors = [error.split(":")[0] for error in visit.errors]
        if kind == "error":
            assert (path.error, errors[-1]) == ("InjectedFault", "InjectedFault"), errors
        elif kind == "timeout":
            assert "Sandbox.Timedout" in errors, (step, errors)
        else:  # a duplicate is no error: any error of the visit was a transient one, retried
            assert path.status == "SUCCEEDED", (step, errors)
    assert paths["ConfirmOrder", "timeout"].states() == HAPPY_PATH  # retried, not compensated
    assert paths["ProcessPayment", "timeout"].states() == HAPPY_PATH
    # A payment taken twice is one charge at the gateway and one payments row
    duplicated = orders["ProcessPayment", "duplicate"]
    assert stack.books(duplicated) == (1, 0)
    assert len(stack.query("SELECT payment_id FROM payments WHERE order_id = %s", duplicated)) == 1
    assert_consistent(stack, list(orders.values()))


def test_direct_start_a_compensation_that_keeps_failing_goes_to_the_dlq_and_flags_the_order(
    stack: LocalStack,
) -> None:
    # Given an out-of-stock order whose refund fails with an error no Retry covers (a transient one
    # is retried for hours: docs/state-transitions.md); sku-3 has 1 unit
    assert stack.stock()["sku-3"] == (1, 0)
    order_id = stack.new_order({"sku-3": 2})
    stack.fault("RefundPayment", "error", order_id, error_type="InjectedFault")
    # When the saga runs
    path = stack.run(order_id)
    # Then the stock compensation ran anyway, and the DLQ branch flagged the order
    assert (path.status, path.error) == ("FAILED", "CompensationFailed")
    assert states(path) == [
        "ProcessPayment",
        "ReserveStock",
        "Compensate",
        "RefundPayment",
        "RefundPaymentOwed",
        "ReleaseStock",
        "CompensationOutcome",
        "CompensationFailed",
        "MarkNeedsAttention",
        "SagaNeedsAttention",
    ]
    assert path.transitions == 10 + transient_retries(path)
    assert stack.order(order_id)["status"] == "NEEDS_ATTENTION"
    # and the DLQ message carries the full context: what failed first, and what could not be undone
    [message] = stack.dlq_messages()
    assert message["order_id"] == order_id
    assert (message["state_machine"], message["machine_role"]) == ("OrderSaga-local-OrderSaga", "saga")
    assert message["execution_arn"].endswith(f":{order_id}")
    assert message["context"]["error"]["Error"] == "OutOfStock"
    assert message["context"]["compensations"]["RefundPayment"]["error"]["Error"] == "InjectedFault"
    assert message["context"]["order_id"] == order_id


@pytest.mark.parametrize("held_step", ["ProcessPayment", "ReserveStock", "ConfirmOrder"])
def test_a_cancel_racing_the_running_saga_ends_the_order_cancelled_and_refunded(
    stack: LocalStack, customer: Customer, held_step: str
) -> None:
    # Given a saga held at one of its forward steps (the race made deterministic: hold, act, release)
    with stack.held(held_step):
        order_id = customer.create({"sku-1": 3}).order_id
        stack.wait_for_state(order_id, held_step)
        # When the customer cancels through the edge (CancelOrder takes the order's row lock)
        cancelled = customer.cancel(order_id)
        assert (cancelled.status, cancelled.cancel_requested) == (pb.ORDER_STATUS_PENDING, True)
    path = stack.finish(order_id)
    # Then the saga saw the flag: nothing charged is kept, the stock is back, the order CANCELLED
    assert (path.status, path.error) == ("FAILED", "OrderCancelled")
    assert states(path)[-3:] == CANCELLED_PATH[-3:]
    reached = HAPPY_PATH.index(held_step) + 1
    assert states(path)[:reached] == HAPPY_PATH[:reached]
    assert stack.order(order_id)["status"] == "CANCELLED"
    # (held before its payment, the order was never charged; held later, it was refunded once)
    assert stack.books(order_id) == ((0, 0) if held_step == "ProcessPayment" else (1, 1))
    assert stack.stock() == INITIAL
    assert customer.get(order_id).status == pb.ORDER_STATUS_CANCELLED
    [mail] = stack.wait_for_emails(order_id)
    assert mail["subject"] == f"Your order {order_id} is cancelled"


def test_cancelling_a_confirmed_order_runs_the_cancellation_machine(
    stack: LocalStack, customer: Customer
) -> None:
    # Given a CONFIRMED order
    order_id = customer.create({"sku-2": 2}).order_id
    assert stack.finish(order_id).status == "SUCCEEDED"
    assert stack.stock()["sku-2"] == (3, 0)
    # When the customer cancels it through the edge
    assert customer.cancel(order_id).status == pb.ORDER_STATUS_CANCELLING
    assert customer.watch(order_id)[-1] == "CANCELLED"
    path = stack.finish(order_id, cancellation=True)
    # Then it is refunded, restocked, CANCELLED, and the notice is sent
    assert path.status == "SUCCEEDED"
    assert states(path) == [*COMPENSATE, "MarkOrderCancelled", "SendCancellationNotice", "OrderCancelled"]
    assert path.transitions == 7 + transient_retries(path)
    assert stack.order(order_id)["status"] == "CANCELLED"
    assert stack.payment(order_id)["status"] == "REFUNDED"  # type: ignore[index]
    assert stack.books(order_id) == (1, 1)
    assert stack.stock() == INITIAL
    mails = stack.wait_for_emails(order_id, count=2)
    assert sorted(mail["subject"] for mail in mails) == [
        f"Your order {order_id} is cancelled",
        f"Your order {order_id} is confirmed",
    ]
    # and cancelling again answers the order unchanged
    assert customer.cancel(order_id).status == pb.ORDER_STATUS_CANCELLED


def test_concurrent_orders_on_the_last_units_never_oversell(stack: LocalStack, customer: Customer) -> None:
    # Given five customers ordering 2 of the 5 units of sku-2 at once, through the edge
    assert stack.stock()["sku-2"] == (5, 0)
    barrier = threading.Barrier(5)

    def order() -> str | grpc.StatusCode:
        barrier.wait()
        try:
            return str(customer.create({"sku-2": 2}).order_id)
        except grpc.RpcError as exc:  # the edge may already see the units gone
            return exc.code()

    with ThreadPoolExecutor(max_workers=5) as pool:
        created = list(pool.map(lambda _: order(), range(5)))
    orders = [answer for answer in created if isinstance(answer, str)]
    refusals = [answer for answer in created if not isinstance(answer, str)]
    assert refusals == [grpc.StatusCode.FAILED_PRECONDITION] * len(refusals), refusals
    for order_id in orders:
        stack.finish(order_id)
    # Then exactly two are CONFIRMED; the others failed in the saga or were refused at the edge
    statuses = [stack.order(order_id)["status"] for order_id in orders]
    assert statuses.count("CONFIRMED") == 2, statuses
    assert all(status in {"CONFIRMED", "FAILED"} for status in statuses), statuses
    assert stack.stock()["sku-2"] == (1, 0)
    assert_consistent(stack, orders)


def test_a_cancellation_that_cannot_refund_flags_the_order(stack: LocalStack, customer: Customer) -> None:
    # Given a CONFIRMED order whose refund will fail with an error no Retry covers
    order_id = customer.create({"sku-1": 1}).order_id
    assert stack.finish(order_id).status == "SUCCEEDED"
    stack.fault("RefundPayment", "error", order_id, error_type="InjectedFault")
    # When the customer cancels it through the edge
    customer.cancel(order_id)
    path = stack.finish(order_id, cancellation=True)
    # Then the DLQ branch runs and the order is flagged owing the refund
    assert (path.status, path.error) == ("FAILED", "CompensationFailed")
    assert states(path) == [
        "Compensate",
        "RefundPayment",
        "RefundPaymentOwed",
        "ReleaseStock",
        "CompensationOutcome",
        "CompensationFailed",
        "MarkNeedsAttention",
        "CancellationNeedsAttention",
    ]
    assert path.transitions == 8 + transient_retries(path)
    assert stack.order(order_id)["status"] == "NEEDS_ATTENTION"
    assert stack.payment(order_id)["status"] == "SUCCESS"  # type: ignore[index]
    assert stack.books(order_id) == (1, 0)  # the money owed back, flagged
    # the units went back to stock all the same: only the refund is owed
    assert stack.stock()["sku-1"] == (20, 0)
    [message] = stack.dlq_messages()
    assert (message["order_id"], message["machine_role"]) == (order_id, "cancellation")
    assert message["state_machine"] == "OrderSaga-local-OrderCancellation"
