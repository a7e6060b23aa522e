"""Outages of a failover's length, at the state machines' real Retry waits: the saga's forward
steps ride them out and every order in flight is confirmed (docs/architecture.md, the outage
budget). A Multi-AZ database failover takes 60 to 120 s in AWS; these outages last 45 s, the
length the budget (210 s of waits) must outlast with room, and what a test run can afford."""

import time
from collections.abc import Callable

from devstack.services import LocalServer, MariaDB, Redis
from tests.support.stack import Customer, LocalStack

OUTAGE_SECONDS = 45.0
IN_FLIGHT = 4


def orders_through_an_outage(
    stack: LocalStack, customer: Customer, server: LocalServer, after: Callable[[], None]
) -> list[str]:
    """Orders created while every saga's first step waits; the server goes down, then their steps
    run into the outage; it comes back OUTAGE_SECONDS later (or as soon as every order has ended,
    when the sagas need nothing of the server: the rest of the outage would change nothing)."""
    with stack.real_retry_waits():
        with stack.held("ProcessPayment"):
            orders = [customer.create({"sku-1": 1}).order_id for _ in range(IN_FLIGHT)]
            for order_id in orders:
                stack.wait_for_state(order_id, "ProcessPayment")
            server.stop()
        back_at = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < back_at and not all(ended(stack, order_id) for order_id in orders):
            time.sleep(1.0)  # the outage lasts its length, or until no saga can meet it any more
        server.start()
        after()
        paths = {order_id: stack.finish(order_id) for order_id in orders}
    for order_id, path in paths.items():
        assert (path.status, stack.order(order_id)["status"]) == ("SUCCEEDED", "CONFIRMED"), order_id
        assert stack.books(order_id) == (1, 0), order_id
    return [error.split(":")[0] for path in paths.values() for visit in path.visits for error in visit.errors]


def ended(stack: LocalStack, order_id: str) -> bool:
    status = stack.sfn.describe_execution(executionArn=stack.execution_of(order_id))["status"]
    return bool(status != "RUNNING")


def test_a_database_failover_fails_no_order(
    stack: LocalStack, customer: Customer, database_server: MariaDB
) -> None:
    errors = orders_through_an_outage(stack, customer, database_server, stack.database.close)
    assert "DatabaseUnavailable" in errors  # the steps did meet the outage, and rode it out


def test_a_cache_failover_fails_no_order(stack: LocalStack, customer: Customer, redis_server: Redis) -> None:
    # Redis is a fast path: a step that meets it down runs on MySQL alone (the sagas may then end
    # before the outage does), or retries a CacheUnavailable within the budget; no order fails
    orders_through_an_outage(stack, customer, redis_server, lambda: None)
