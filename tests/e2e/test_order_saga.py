"""The order saga and the cancellation machine, run for real on the local stack.

Each test writes a PENDING order the way the edge does, starts the execution the way the edge
does (name = order_id), waits for it to end and checks the database, the messages and the
execution's path. The expected state transitions per path are the figures of
docs/state-transitions.md.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from devstack.executions import ExecutionPath
from tests.e2e.stack import TERMINAL, LocalStack
from tests.integration.conftest import CATALOG

INITIAL = {product: (stock, 0) for product, (_, stock) in CATALOG.items()}
HAPPY_PATH = ["ProcessPayment", "ReserveStock", "ConfirmOrder", "SendOrderConfirmation", "OrderConfirmed"]
# The compensations run in a Parallel state: its two branches' states are listed in name order.
COMPENSATE = ["Compensate", "RefundPayment", "ReleaseStock", "CompensationOutcome"]
COMPENSATED_PATH = [*COMPENSATE, "MarkOrderFailed", "SendFailureAlert", "OrderFailed"]
CANCELLED_PATH = [*COMPENSATE, "MarkOrderCancelled", "SendCancellationNotice", "OrderCancelled"]


def states(path: ExecutionPath) -> list[str]:
    """The path's states, those of the Parallel branches (which interleave) in name order."""
    names = path.states()
    if "Compensate" not in names or "CompensationOutcome" not in names:
        return names
    start, end = names.index("Compensate") + 1, names.index("CompensationOutcome")
    return [*names[:start], *sorted(names[start:end]), *names[end:]]


def assert_consistent(stack: LocalStack, order_ids: list[str]) -> None:
    """The saga's promise: every order terminal, no money kept and no stock held unless CONFIRMED."""
    committed: dict[str, int] = dict.fromkeys(CATALOG, 0)
    for order_id in order_ids:
        order, payment = stack.order(order_id), stack.payment(order_id)
        assert order["status"] in TERMINAL, order_id
        if order["status"] == "CONFIRMED":
            assert payment is not None
            assert payment["status"] == "SUCCESS", order_id
        else:
            assert payment is None or payment["status"] != "SUCCESS", (order_id, payment)
        reservations = stack.query(
            "SELECT product_id, quantity, status FROM inventory_reservations WHERE order_id = %s", order_id
        )
        assert all(r["status"] != "RESERVED" for r in reservations), (order_id, reservations)
        for r in reservations:
            if r["status"] == "COMMITTED":
                assert order["status"] == "CONFIRMED", order_id
                committed[r["product_id"]] += r["quantity"]
    assert stack.stock() == {p: (stock - committed[p], 0) for p, (stock, _) in INITIAL.items()}


def test_happy_path_confirms_charges_commits_stock_and_mails(stack: LocalStack) -> None:
    # Given a PENDING order of 2 x sku-1 paid with a good card
    order_id = stack.new_order({"sku-1": 2})
    # When the saga runs
    path = stack.run(order_id)
    # Then the order is CONFIRMED, charged once, its stock committed and nothing left reserved
    assert (path.status, path.states()) == ("SUCCEEDED", HAPPY_PATH)
    assert path.transitions == 5, [(v.name, v.errors) for v in path.visits if v.errors]
    assert stack.order(order_id)["status"] == "CONFIRMED"
    assert stack.payment(order_id) == {"status": "SUCCESS", "amount": Decimal("19.98")}
    assert stack.stock()["sku-1"] == (18, 0)
    # and the confirmation went out through the queue, its consumer and SES
    [mail] = stack.emails_about(order_id)
    assert mail["subject"] == f"Your order {order_id} is confirmed"
    assert mail["destinations"]["ToAddresses"] == ["buyer@example.com"]
    assert stack.saga_steps(order_id) == [
        "ProcessPayment",  # the intent (CHARGING), committed before the gateway call
        "ProcessPayment",
        "ReserveStock",
        "ConfirmOrder",
        "SendOrderConfirmation",
    ]


def test_a_declined_card_fails_the_order_without_charging_or_reserving(stack: LocalStack) -> None:
    order_id = stack.new_order({"sku-1": 2}, token="tok_chargeDeclined")
    path = stack.run(order_id)
    assert (path.status, path.error) == ("FAILED", "PaymentDeclined")
    assert states(path) == ["ProcessPayment", *COMPENSATED_PATH]
    assert path.transitions == 8, [(v.name, v.errors) for v in path.visits if v.errors]
    order = stack.order(order_id)
    assert order["status"] == "FAILED"
    assert order["failure_reason"] == "Your card was declined."
    assert stack.payment(order_id)["status"] == "FAILED"  # type: ignore[index]
    assert stack.stock() == INITIAL
    [mail] = stack.emails_about(order_id)
    assert mail["subject"] == f"We could not complete your order {order_id}"


def test_out_of_stock_refunds_and_fails(stack: LocalStack) -> None:
    # Given an order for 2 units of a product with 1 in stock
    order_id = stack.new_order({"sku-3": 2})
    path = stack.run(order_id)
    assert (path.status, path.error) == ("FAILED", "OutOfStock")
    assert states(path) == ["ProcessPayment", "ReserveStock", *COMPENSATED_PATH]
    assert path.transitions == 9, [(v.name, v.errors) for v in path.visits if v.errors]
    assert stack.order(order_id)["status"] == "FAILED"
    assert stack.payment(order_id)["status"] == "REFUNDED"  # type: ignore[index]
    assert stack.stock() == INITIAL
    assert len(stack.emails_about(order_id)) == 1
    assert "RefundPayment" in stack.saga_steps(order_id)


def test_a_briefly_unavailable_gateway_is_retried_until_it_answers(stack: LocalStack) -> None:
    order_id = stack.new_order({"sku-2": 1}, token="tok_unavailable_2")
    path = stack.run(order_id)
    assert (path.status, path.states()) == ("SUCCEEDED", HAPPY_PATH)
    [payment_visit] = [visit for visit in path.visits if visit.name == "ProcessPayment"]
    assert payment_visit.retries == 2
    assert [error.split(":")[0] for error in payment_visit.errors] == ["PaymentGatewayUnavailable"] * 2
    assert path.transitions == 7  # 5 states + 2 retries
    assert stack.order(order_id)["status"] == "CONFIRMED"


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


def test_a_fault_at_each_step_in_turn_leaves_every_order_consistent(stack: LocalStack) -> None:
    # Given one order per (step, fault), each fault aimed at its own order, once
    orders: dict[tuple[str, str], str] = {}
    for step, kind in FAULTS:
        order_id = stack.new_order({"sku-1": 1})
        orders[step, kind] = order_id
        extra: dict[str, Any] = {"error_type": "InjectedFault"} if kind == "error" else {}
        stack.fault(step, kind, order_id, times=1, **extra)
    # When all sagas run side by side (a timeout lasts the function's own timeout)
    with ThreadPoolExecutor(max_workers=len(orders)) as pool:
        paths = dict(zip(orders, pool.map(stack.run, orders.values()), strict=True))
    # Then each ended as expected, with the fault visible in its path, and the books balance
    outcomes = {
        case: (stack.order(order_id)["status"], paths[case].transitions) for case, order_id in orders.items()
    }
    assert outcomes == FAULTS
    for (step, kind), path in paths.items():
        [visit] = [visit for visit in path.visits if visit.name == step]
        if kind == "error":
            assert (path.error, visit.errors[0].split(":")[0]) == ("InjectedFault", "InjectedFault")
        elif kind == "timeout":
            assert visit.errors[0].startswith("Sandbox.Timedout"), step
        else:
            assert (visit.errors, path.status) == ([], "SUCCEEDED"), step
    assert paths["ConfirmOrder", "timeout"].states() == HAPPY_PATH  # retried, not compensated
    assert paths["ProcessPayment", "timeout"].states() == HAPPY_PATH
    assert_consistent(stack, list(orders.values()))


def test_a_compensation_that_keeps_failing_goes_to_the_dlq_and_flags_the_order(stack: LocalStack) -> None:
    # Given an out-of-stock order whose refund fails with an error no Retry covers (a transient one
    # is retried for hours: docs/state-transitions.md)
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
    assert path.transitions == 10, [(v.name, v.errors) for v in path.visits if v.errors]
    assert stack.order(order_id)["status"] == "NEEDS_ATTENTION"
    # and the DLQ message carries the full context: what failed first, and what could not be undone
    [message] = [body for body in stack.dlq_messages() if body["order_id"] == order_id]
    assert message["state_machine"] == "OrderSaga"
    assert message["execution_arn"].endswith(f":{order_id}")
    assert message["context"]["error"]["Error"] == "OutOfStock"
    assert message["context"]["compensations"]["RefundPayment"]["error"]["Error"] == "InjectedFault"
    assert message["context"]["order_id"] == order_id


def test_cancelling_a_pending_order_compensates_and_ends_cancelled(stack: LocalStack) -> None:
    # Given an order whose confirmation is slow to start
    order_id = stack.new_order({"sku-1": 3})
    stack.fault("ConfirmOrder", "delay", order_id, delay_seconds=3, times=1)
    execution = stack.start(order_id)
    # When the customer cancels once the payment went through (the edge sets the flag)
    deadline = time.monotonic() + 30
    while stack.payment(order_id) is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with stack.database.transaction() as cursor:
        cursor.execute("UPDATE orders SET cancel_requested = TRUE WHERE order_id = %s", (order_id,))
    path = stack.wait(execution)
    # Then the charge is refunded, the stock released, the order CANCELLED and the customer told
    assert (path.status, path.error) == ("FAILED", "OrderCancelled")
    assert states(path) == ["ProcessPayment", "ReserveStock", "ConfirmOrder", *CANCELLED_PATH]
    assert path.transitions == 10, [(v.name, v.errors) for v in path.visits if v.errors]
    assert stack.order(order_id)["status"] == "CANCELLED"
    assert stack.payment(order_id)["status"] == "REFUNDED"  # type: ignore[index]
    assert stack.stock() == INITIAL
    [mail] = stack.emails_about(order_id)
    assert mail["subject"] == f"Your order {order_id} is cancelled"


def test_the_cancellation_machine_undoes_a_confirmed_order(stack: LocalStack) -> None:
    # Given a CONFIRMED order
    order_id = stack.new_order({"sku-2": 2})
    assert stack.run(order_id).status == "SUCCEEDED"
    assert stack.stock()["sku-2"] == (3, 0)
    # When the customer cancels it (the edge marks it CANCELLING and starts the machine)
    with stack.database.transaction() as cursor:
        cursor.execute("UPDATE orders SET status = 'CANCELLING' WHERE order_id = %s", (order_id,))
    path = stack.run(order_id, cancellation=True)
    # Then it is refunded, restocked, CANCELLED, and the notice is sent
    assert path.status == "SUCCEEDED"
    assert states(path) == [*COMPENSATE, "MarkOrderCancelled", "SendCancellationNotice", "OrderCancelled"]
    assert path.transitions == 7, [(v.name, v.errors) for v in path.visits if v.errors]
    assert stack.order(order_id)["status"] == "CANCELLED"
    assert stack.payment(order_id)["status"] == "REFUNDED"  # type: ignore[index]
    assert stack.stock() == INITIAL
    subjects = sorted(mail["subject"] for mail in stack.emails_about(order_id))
    assert subjects == [f"Your order {order_id} is cancelled", f"Your order {order_id} is confirmed"]


def test_concurrent_sagas_on_the_last_units_never_oversell(stack: LocalStack) -> None:
    # Given five orders for the 5 units of sku-2, two units each
    orders = [stack.new_order({"sku-2": 2}) for _ in range(5)]
    barrier = threading.Barrier(len(orders))

    def run(order_id: str) -> ExecutionPath:
        barrier.wait()
        return stack.run(order_id)

    with ThreadPoolExecutor(max_workers=len(orders)) as pool:
        paths = list(pool.map(run, orders))
    statuses = sorted(stack.order(order_id)["status"] for order_id in orders)
    assert statuses == ["CONFIRMED", "CONFIRMED", "FAILED", "FAILED", "FAILED"]
    assert sorted(path.status for path in paths) == ["FAILED", "FAILED", "FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert stack.stock()["sku-2"] == (1, 0)
    assert_consistent(stack, orders)


def test_a_cancellation_that_cannot_refund_flags_the_order(stack: LocalStack) -> None:
    # Given a CONFIRMED order being cancelled, whose refund fails with an error no Retry covers
    order_id = stack.new_order({"sku-1": 1})
    assert stack.run(order_id).status == "SUCCEEDED"
    with stack.database.transaction() as cursor:
        cursor.execute("UPDATE orders SET status = 'CANCELLING' WHERE order_id = %s", (order_id,))
    stack.fault("RefundPayment", "error", order_id, error_type="InjectedFault")
    path = stack.run(order_id, cancellation=True)
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
    assert path.transitions == 8, [(v.name, v.errors) for v in path.visits if v.errors]
    assert stack.order(order_id)["status"] == "NEEDS_ATTENTION"
    assert stack.payment(order_id)["status"] == "SUCCESS"  # type: ignore[index]
    # the units went back to stock all the same: only the refund is owed
    assert stack.stock()["sku-1"] == (20, 0)
    [message] = [body for body in stack.dlq_messages() if body["order_id"] == order_id]
    assert message["state_machine"] == "OrderCancellation"
