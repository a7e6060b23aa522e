"""The edge reuses a product's price for a short time; MySQL stays the truth for what it has not
seen, and the cache never makes the edge refuse a product that exists."""

import uuid
from collections.abc import Iterator
from decimal import Decimal

import boto3
import pytest
import redis

from devstack.stepfunctions_endpoint import StepFunctionsEndpoint
from order_saga.db import Database
from order_saga.errors import UnknownProduct
from order_saga.models import Actor
from order_saga.order_requests import NewOrder
from order_saga.order_service import OrderService
from order_saga.settings import Settings
from tests.support.clock import Clock

SAGA = "arn:aws:states:us-east-1:123456789012:stateMachine:OrderSaga"
TTL = 5.0
ALICE = Actor("alice", "shop-app")


@pytest.fixture
def endpoint() -> Iterator[StepFunctionsEndpoint]:
    endpoint = StepFunctionsEndpoint().start()
    yield endpoint
    endpoint.stop()


def order_of(product_id: str) -> NewOrder:
    return NewOrder(idempotency_key=str(uuid.uuid4()), items=[(product_id, 1)], payment_token="tok_visa")


def test_a_price_change_reaches_new_orders_after_the_ttl_and_a_new_product_at_once(
    settings: Settings,
    database: Database,
    redis_client: "redis.Redis",
    shop: dict[str, tuple[int, Decimal]],
    endpoint: StepFunctionsEndpoint,
) -> None:
    clock = Clock(1000.0)
    sfn = boto3.client(
        "stepfunctions", endpoint_url=endpoint.url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    orders = OrderService(lambda: Database(settings), redis_client, sfn, saga_arn=SAGA, cancellation_arn=SAGA,
                          catalog_ttl_seconds=TTL, clock=clock)  # fmt: skip
    assert orders.create_order(ALICE, order_of("pen")).total == Decimal("1.20")

    # Given: the price changes in MySQL, and a product is added
    with database.transaction() as cursor:
        cursor.execute("UPDATE inventory SET unit_price = 2.00 WHERE product_id = 'pen'")
        cursor.execute(
            "INSERT INTO inventory (product_id, stock, unit_price, currency) VALUES ('mug', 3, 8.00, 'EUR')"
        )
    # Then: within the TTL the remembered price holds, and the new product is found at once ...
    clock.now += TTL - 1
    assert orders.create_order(ALICE, order_of("pen")).total == Decimal("1.20")
    assert orders.create_order(ALICE, order_of("mug")).total == Decimal("8.00")
    # ... and after it the new price applies
    clock.now += 2
    assert orders.create_order(ALICE, order_of("pen")).total == Decimal("2.00")
    # A product that does not exist is never remembered as existing
    with pytest.raises(UnknownProduct):
        orders.create_order(ALICE, order_of("ghost"))
    assert len(endpoint.started) == 4
