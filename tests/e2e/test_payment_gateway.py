"""The payment gateway as production meets it, on the real local stack: its key rotated while
orders are in flight, and its books surviving a restart of everything."""

from tests.support.stack import Customer, LocalStack

# Orders of each money outcome: (token, a fault aimed at its ReserveStock) -> (final status, the
# gateway's books). The aimed error is one no Retry covers: the saga compensates, refunding.
OUTCOMES = {
    "kept": (("tok_visa", False), ("CONFIRMED", (1, 0))),
    "declined": (("tok_chargeDeclined", False), ("FAILED", (0, 0))),
    "refunded": (("tok_visa", True), ("FAILED", (1, 1))),
}


def place_every_outcome(stack: LocalStack, customer: Customer) -> dict[str, str]:
    """One order of each outcome, created while every saga's first step is held (the caller holds
    it), each saga waiting there."""
    orders = {}
    for name, ((token, fails_later), _) in OUTCOMES.items():
        orders[name] = customer.create({"sku-1": 1}, token=token).order_id
        if fails_later:
            stack.fault("ReserveStock", "error", orders[name], error_type="InjectedFault")
    for order_id in orders.values():
        stack.wait_for_state(order_id, "ProcessPayment")
    return orders


def assert_every_outcome(stack: LocalStack, orders: dict[str, str]) -> None:
    for name, order_id in orders.items():
        stack.finish(order_id)
        status, books = OUTCOMES[name][1]
        assert (stack.order(order_id)["status"], stack.books(order_id)) == (status, books), name


def refused_keys(stack: LocalStack) -> int:
    """How many requests the gateway server refused for their key (its request log)."""
    log = stack.state_dir / "gateway" / "gateway.log"
    return sum(" 401 " in line for line in log.read_text().splitlines())


def test_a_key_rotated_with_no_grace_mid_run_changes_no_order(stack: LocalStack, customer: Customer) -> None:
    # Given the payment functions warm, holding the gateway's key in their secret cache
    with stack.held("ProcessPayment"):
        warm = place_every_outcome(stack, customer)
    assert_every_outcome(stack, warm)
    refused_before = refused_keys(stack)
    # and orders of every outcome created while every saga's first step waits
    with stack.held("ProcessPayment"):
        orders = place_every_outcome(stack, customer)
        # When an operator rotates the key, the old one expiring at once
        code, output = stack.operator("gateway", "rotate-key", "--grace", "0")
        assert code == 0, output
    # Then every order ends as it would have without the rotation, none NEEDS_ATTENTION
    assert_every_outcome(stack, orders)
    # and the old key was refused on the way: the functions read the secret again and went on
    assert refused_keys(stack) > refused_before


def test_the_books_survive_a_restart_of_the_whole_stack(stack: LocalStack, customer: Customer) -> None:
    # Given orders of every money outcome, their customers told
    with stack.held("ProcessPayment"):
        orders = place_every_outcome(stack, customer)
    assert_every_outcome(stack, orders)
    for order_id in orders.values():
        stack.wait_for_emails(order_id)
    # When the whole stack is stopped and started again, as a developer does
    for command in ("down", "up"):
        result = stack.cli(command)
        assert result.returncode == 0, result.stdout + result.stderr
    stack.database.close()  # its connection went with the old MariaDB: the next tests connect afresh
    # Then the auditor finds the books whole: the gateway kept every charge and refund
    code, output = stack.operator("audit")
    assert code == 0, output
    assert all(stack.books(order_id) == OUTCOMES[name][1][1] for name, order_id in orders.items())
