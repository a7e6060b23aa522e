"""ConfirmOrder and the ends of the compensation paths: state checks, stock commit, status feed."""

import json
import time

import pytest
import redis

from order_saga.db import Database
from order_saga.errors import (
    InvalidStateTransition,
    OrderAlreadySettled,
    OrderCancelled,
    OrderNotFound,
    PaymentDeclined,
)
from order_saga.feeds import status_channel
from order_saga.models import OrderStatus
from order_saga.payment_gateway import HttpGateway
from order_saga.steps.inventory import release_stock, reserve_stock
from order_saga.steps.orders import (
    StepError,
    confirm_order,
    mark_needs_attention,
    mark_order_cancelled,
    mark_order_failed,
)
from order_saga.steps.payment import process_payment, refund_payment
from tests.support.data import OrderFactory, query


def paid_and_reserved(
    database: Database, cache: "redis.Redis", gateway: HttpGateway, new_order: OrderFactory, **items: int
) -> str:
    order_id = new_order(items or {"sku-1": 2})
    process_payment(database, gateway, order_id)
    reserve_stock(database, cache, order_id)
    return order_id


END_OF_TEST = "end-of-test"


def published(feed: "redis.client.PubSub", client: "redis.Redis", channel: str) -> list[str]:
    """Every message published on the channel so far: the test publishes a marker after them and
    reads up to it (Redis delivers one channel's messages in order), so no listening window decides."""
    client.publish(channel, END_OF_TEST)
    messages: list[str] = []
    deadline = time.monotonic() + 60
    while not messages or messages[-1] != END_OF_TEST:
        assert time.monotonic() < deadline, f"the marker never came back on {channel}; got {messages}"
        message = feed.get_message(timeout=0.5)
        if message is not None:
            messages.append(message["data"])
    return messages[:-1]


def order_row(database: Database, order_id: str) -> dict[str, object]:
    return query(
        database, "SELECT status, failure_reason, version FROM orders WHERE order_id = %s", order_id
    )[0]


def test_confirming_commits_the_stock_once_and_publishes(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    order_id = paid_and_reserved(database, redis_client, gateway, new_order)
    feed = redis_client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    feed.subscribe(status_channel(order_id))
    # When ConfirmOrder runs twice
    assert confirm_order(database, redis_client, order_id).status is OrderStatus.CONFIRMED
    assert confirm_order(database, redis_client, order_id).status is OrderStatus.CONFIRMED
    # Then the units left the stock once, the reservations are committed, one change was published
    assert query(database, "SELECT stock, reserved FROM inventory WHERE product_id = 'sku-1'") == [
        {"stock": 18, "reserved": 0}
    ]
    statuses = query(database, "SELECT status FROM inventory_reservations WHERE order_id = %s", order_id)
    assert statuses == [{"status": "COMMITTED"}]
    assert order_row(database, order_id)["version"] == 1
    assert published(feed, redis_client, status_channel(order_id)) == ["CONFIRMED"]
    feed.close()


def test_a_cancellation_request_stops_confirmation(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    order_id = paid_and_reserved(database, redis_client, gateway, new_order)
    with database.transaction() as cursor:
        cursor.execute("UPDATE orders SET cancel_requested = TRUE WHERE order_id = %s", (order_id,))
    with pytest.raises(OrderCancelled):
        confirm_order(database, redis_client, order_id)
    assert order_row(database, order_id)["status"] == "PENDING"
    assert query(database, "SELECT reserved FROM inventory WHERE product_id = 'sku-1'") == [{"reserved": 2}]


def test_an_order_without_payment_is_not_confirmed(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory
) -> None:
    order_id = new_order()
    reserve_stock(database, redis_client, order_id)
    with pytest.raises(InvalidStateTransition, match="payment"):
        confirm_order(database, redis_client, order_id)
    assert order_row(database, order_id)["status"] == "PENDING"


def compensated(database: Database, cache: "redis.Redis", gateway: HttpGateway, order_id: str) -> str:
    """The order as the compensations leave it: refunded (nothing charged) and released."""
    refund_payment(database, gateway, order_id)
    release_stock(database, cache, order_id)
    return order_id


def test_a_failed_order_tells_the_customer_in_plain_words_and_keeps_the_detail_for_operators(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    # Given a compensated order, whose failure was an OutOfStock of sku-3 (1 unit, 2 ordered)
    order_id = compensated(database, redis_client, gateway, new_order({"sku-3": 2}))
    cause = json.dumps({"errorType": "OutOfStock", "errorMessage": "fewer than 2 of sku-3 at db:3306 left"})
    error = StepError.model_validate({"Error": "OutOfStock", "Cause": cause})
    # When it is marked failed, twice
    mark_order_failed(database, redis_client, order_id, error)
    mark_order_failed(database, redis_client, order_id, error)
    # Then the customer reads a sentence naming the product, with a stable code, and nothing internal
    [row] = query(
        database, "SELECT status, failure_reason, reason_code FROM orders WHERE order_id = %s", order_id
    )
    assert row == {
        "status": "FAILED",
        "failure_reason": "Sorry, SKU-3 is sold out.",
        "reason_code": "OUT_OF_STOCK",
    }
    # and the operators' detail is in saga_log, once
    [entry] = query(
        database, "SELECT detail FROM saga_log WHERE saga_id = %s AND step = 'MarkOrderFailed'", order_id
    )
    assert entry["detail"] == "OutOfStock: fewer than 2 of sku-3 at db:3306 left"


@pytest.mark.parametrize(
    ("token", "sentence"),
    [
        ("tok_chargeDeclinedInsufficientFunds", "Your card was declined: the funds were insufficient."),
        ("tok_chargeDeclinedExpiredCard", "Your card was declined: it has expired."),
        ("tok_chargeDeclined", "Your card was declined."),
    ],
)
def test_a_declined_order_tells_the_customer_why_the_gateway_declined(
    database: Database,
    redis_client: "redis.Redis",
    new_order: OrderFactory,
    gateway: HttpGateway,
    token: str,
    sentence: str,
) -> None:
    # Given an order whose card the gateway declined with a reason of its own
    order_id = new_order(token=token)
    with pytest.raises(PaymentDeclined) as declined:
        process_payment(database, gateway, order_id)
    cause = json.dumps({"errorType": "PaymentDeclined", "errorMessage": str(declined.value)})
    compensated(database, redis_client, gateway, order_id)
    # When the saga marks it failed
    mark_order_failed(
        database,
        redis_client,
        order_id,
        StepError.model_validate({"Error": "PaymentDeclined", "Cause": cause}),
    )
    # Then the customer reads the reason in plain words, under the stable code
    [row] = query(database, "SELECT failure_reason, reason_code FROM orders WHERE order_id = %s", order_id)
    assert row == {"failure_reason": sentence, "reason_code": "PAYMENT_DECLINED"}


def test_an_order_still_holding_money_or_stock_is_never_marked_failed(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    # Given a paid, reserved order whose compensations have not run
    order_id = paid_and_reserved(database, redis_client, gateway, new_order)
    # When something tries to end it FAILED, then it is refused and nothing changes
    with pytest.raises(InvalidStateTransition, match="still owes RefundPayment, ReleaseStock"):
        mark_order_failed(database, redis_client, order_id, None)
    assert order_row(database, order_id)["status"] == "PENDING"


def test_a_timeout_reason_reads_well() -> None:
    error = StepError.model_validate({"Error": "States.Timeout", "Cause": "Task timed out after 10 seconds"})
    assert error.describe() == "States.Timeout: Task timed out after 10 seconds"


def test_a_confirmed_order_cannot_be_marked_failed(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    order_id = paid_and_reserved(database, redis_client, gateway, new_order)
    confirm_order(database, redis_client, order_id)
    with pytest.raises(InvalidStateTransition):
        mark_order_failed(database, redis_client, order_id, None)
    assert order_row(database, order_id)["status"] == "CONFIRMED"


def test_cancelling_a_confirmed_order_restocks(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    # Given a confirmed order that the cancellation machine is undoing (the edge set CANCELLING)
    order_id = paid_and_reserved(database, redis_client, gateway, new_order)
    confirm_order(database, redis_client, order_id)
    with database.transaction() as cursor:
        cursor.execute("UPDATE orders SET status = 'CANCELLING' WHERE order_id = %s", (order_id,))
    # When the charge is refunded, the stock released and the order marked cancelled
    refund_payment(database, gateway, order_id)
    release_stock(database, redis_client, order_id)
    mark_order_cancelled(database, redis_client, order_id)
    # Then the units are back in stock and the order is CANCELLED
    assert query(database, "SELECT stock, reserved FROM inventory WHERE product_id = 'sku-1'") == [
        {"stock": 20, "reserved": 0}
    ]
    assert order_row(database, order_id)["status"] == "CANCELLED"


def cancelled_after_its_confirmation(
    database: Database, cache: "redis.Redis", gateway: HttpGateway, new_order: OrderFactory
) -> str:
    """An order confirmed by its saga, then cancelled by the customer through the cancellation
    machine's steps (the edge set CANCELLING): CANCELLED, refunded, its stock back."""
    order_id = paid_and_reserved(database, cache, gateway, new_order)
    confirm_order(database, cache, order_id)
    with database.transaction() as cursor:
        cursor.execute("UPDATE orders SET status = 'CANCELLING' WHERE order_id = %s", (order_id,))
    mark_order_cancelled(database, cache, compensated(database, cache, gateway, order_id))
    return order_id


def test_a_confirmation_retried_after_its_commit_answers_confirmed_though_the_customer_cancelled(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    # Given an order whose ConfirmOrder committed but whose answer was lost, then cancelled by
    # the customer while the saga waited to retry it
    order_id = cancelled_after_its_confirmation(database, redis_client, gateway, new_order)
    # When the saga's ConfirmOrder retry runs (its fast-path record gone: MySQL decides)
    outcome = confirm_order(database, redis_client, order_id)
    # Then it answers the confirmation it made, and leaves the cancellation as it is
    assert outcome.status is OrderStatus.CONFIRMED
    assert order_row(database, order_id)["status"] == "CANCELLED"
    assert query(database, "SELECT stock, reserved FROM inventory WHERE product_id = 'sku-1'") == [
        {"stock": 20, "reserved": 0}
    ]


def test_a_confirmation_never_made_is_not_answered_confirmed(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    # Given an order cancelled before it was confirmed (its saga compensated it)
    order_id = paid_and_reserved(database, redis_client, gateway, new_order)
    compensated(database, redis_client, gateway, order_id)
    mark_order_cancelled(database, redis_client, order_id)
    # When a ConfirmOrder arrives for it, it is refused
    with pytest.raises(InvalidStateTransition, match="only a PENDING order is confirmed"):
        confirm_order(database, redis_client, order_id)


def test_needs_attention_refuses_a_settled_order_that_owes_nothing(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    # Given an order cancelled and refunded by the cancellation machine
    order_id = cancelled_after_its_confirmation(database, redis_client, gateway, new_order)
    # When a saga that lost the race asks to flag it
    error = StepError.model_validate({"Error": "InvalidStateTransition", "Cause": "order is CANCELLED"})
    with pytest.raises(OrderAlreadySettled, match="owes nothing"):
        mark_needs_attention(database, redis_client, order_id, error)
    # Then the order stays CANCELLED, unflagged
    assert order_row(database, order_id)["status"] == "CANCELLED"
    steps = query(database, "SELECT step FROM saga_log WHERE saga_id = %s", order_id)
    assert "MarkNeedsAttention" not in [row["step"] for row in steps]


def test_needs_attention_records_what_is_still_owed(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    # Given a paid, reserved order whose stock was released but whose refund kept failing
    order_id = paid_and_reserved(database, redis_client, gateway, new_order)
    release_stock(database, redis_client, order_id)
    error = StepError.model_validate({"Error": "PaymentGatewayUnavailable", "Cause": "gateway at 10.0.0.1"})
    # When it is flagged
    outcome = mark_needs_attention(database, redis_client, order_id, error)
    # Then MySQL records exactly what it owes, and the customer reads a sentence
    assert outcome.owed_compensations == ["RefundPayment"]
    [row] = query(
        database,
        "SELECT status, owed_compensations, reason_code, failure_reason FROM orders WHERE order_id = %s",
        order_id,
    )
    assert row == {
        "status": "NEEDS_ATTENTION",
        "owed_compensations": "RefundPayment",
        "reason_code": "UNDER_REVIEW",
        "failure_reason": "We hit a problem finishing your order; our team is on it and will contact you.",
    }


def test_an_unknown_order_is_not_found(database: Database, redis_client: "redis.Redis") -> None:
    with pytest.raises(OrderNotFound):
        confirm_order(database, redis_client, "00000000-0000-4000-8000-000000000000")


def test_the_saga_never_undoes_a_confirmed_order(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    # Given an order whose ConfirmOrder committed, though the state machine may not have heard it
    order_id = paid_and_reserved(database, redis_client, gateway, new_order)
    confirm_order(database, redis_client, order_id)
    # When compensations arrive for it (a task timeout caught after the commit)
    with pytest.raises(InvalidStateTransition, match="cancellation machine"):
        refund_payment(database, gateway, order_id)
    with pytest.raises(InvalidStateTransition, match="cancellation machine"):
        release_stock(database, redis_client, order_id)
    # Then the money and the stock stay with the confirmed order
    assert query(database, "SELECT status FROM payments WHERE order_id = %s", order_id) == [
        {"status": "SUCCESS"}
    ]
    assert query(database, "SELECT stock, reserved FROM inventory WHERE product_id = 'sku-1'") == [
        {"stock": 18, "reserved": 0}
    ]


def test_a_flagged_order_ends_failed_when_its_compensation_is_re_driven(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory, gateway: HttpGateway
) -> None:
    # Given an order flagged after its compensation kept failing
    order_id = new_order()
    mark_needs_attention(database, redis_client, order_id, None)
    # When an operator re-drives the compensation, then the order ends FAILED, owing nothing
    compensated(database, redis_client, gateway, order_id)
    outcome = mark_order_failed(database, redis_client, order_id, None)
    assert (outcome.status, outcome.owed_compensations) == (OrderStatus.FAILED, [])
