"""The payment gateway as production meets it, on the real local stack: its key rotated while
orders are in flight, and its books surviving a restart of everything."""

from tests.support.stack import Customer, LocalStack, wait_until

# Orders of each money outcome: (items, token) -> (final status, the gateway's books).
OUTCOMES = {
    "kept": (({"sku-1": 1}, "tok_visa"), ("CONFIRMED", (1, 0))),
    "declined": (({"sku-1": 1}, "tok_chargeDeclined"), ("FAILED", (0, 0))),
    "refunded": (({"sku-3": 2}, "tok_visa"), ("FAILED", (1, 1))),  # 1 unit in stock: OutOfStock
}


def place_every_outcome(customer: Customer) -> dict[str, str]:
    return {
        name: customer.create(items, token=token).order_id for name, ((items, token), _) in OUTCOMES.items()
    }


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
    assert_every_outcome(stack, place_every_outcome(customer))
    refused_before = refused_keys(stack)
    # and orders of every outcome created while every saga's first step waits
    with stack.held("ProcessPayment"):
        orders = place_every_outcome(customer)
        stack.wait_for_state(orders["kept"], "ProcessPayment")
        # When an operator rotates the key, the old one expiring at once
        code, output = stack.operator("gateway", "rotate-key", "--grace", "0")
        assert code == 0, output
    # Then every order ends as it would have without the rotation, none NEEDS_ATTENTION
    assert_every_outcome(stack, orders)
    # and the old key was refused on the way: the functions read the secret again and went on
    assert refused_keys(stack) > refused_before


def test_the_books_survive_a_restart_of_the_whole_stack(stack: LocalStack, customer: Customer) -> None:
    # Given orders of every money outcome, their customers told
    orders = place_every_outcome(customer)
    assert_every_outcome(stack, orders)
    for order_id in orders.values():
        wait_until(lambda order_id=order_id: stack.emails_about(order_id), f"the notice of {order_id}")
    # When the whole stack is stopped and started again, as a developer does
    for command in ("down", "up"):
        result = stack.cli(command)
        assert result.returncode == 0, result.stdout + result.stderr
    # Then the auditor finds the books whole: the gateway kept every charge and refund
    code, output = stack.operator("audit")
    assert code == 0, output
    assert all(stack.books(order_id) == OUTCOMES[name][1][1] for name, order_id in orders.items())
