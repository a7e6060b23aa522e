"""CreateOrder: pricing from the catalog, the stored order, the started saga, idempotency, bad input."""

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import grpc
import pytest
import redis

from devstack.stepfunctions_endpoint import StepFunctionsEndpoint
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from order_saga.feeds import availability_key as available_key
from tests.support.edge import Edge, EdgeFactory, field_violations, status_of


def test_a_good_order_is_stored_pending_priced_from_the_catalog_and_its_saga_started(
    edge: Edge, shop: dict[str, tuple[int, Decimal]], redis_client: "redis.Redis"
) -> None:
    # When: alice orders two books and a lamp
    order = edge.create([("book", 2), ("lamp", 1)])

    # Then: PENDING, with the catalog's prices (2 x 12.50 + 30.00), for alice
    assert order.status == pb.ORDER_STATUS_PENDING
    assert (order.total, order.currency, order.user_id) == ("55.00", "EUR", "alice")
    assert {(i.product_id, i.quantity) for i in order.items} == {("book", 2), ("lamp", 1)}
    # ... stored with its lines in MySQL, and logged
    [row] = edge.sql("SELECT * FROM orders WHERE order_id = %s", (order.order_id,))
    assert (row["status"], row["total"], row["payment_token"]) == ("PENDING", Decimal("55.00"), "tok_visa")
    lines = edge.sql("SELECT product_id, unit_price FROM order_items WHERE order_id = %s", (order.order_id,))
    assert {(r["product_id"], r["unit_price"]) for r in lines} == {("book", Decimal("12.50")), ("lamp", 30)}
    assert edge.sql("SELECT step, status FROM saga_log WHERE saga_id = %s", (order.order_id,)) == [
        {"step": "CreateOrder", "status": "PENDING"}
    ]
    # ... and its saga started under the order's id, with only the order id as input
    [execution] = edge.machines.executions(edge.machines.saga_arn)
    assert execution["name"] == order.order_id
    assert row["execution_arn"] == execution["executionArn"]
    assert order.execution_arn == ""  # an operator's concern: never shown to the customer
    described = edge.machines.client.describe_execution(executionArn=row["execution_arn"])
    assert json.loads(described["input"]) == {"order_id": order.order_id}
    # ... and the availability read from MySQL on a cache miss is now cached
    assert redis_client.get(available_key("book")) == "50"


def test_availability_comes_from_redis_first(
    edge: Edge, shop: dict[str, tuple[int, Decimal]], redis_client: "redis.Redis"
) -> None:
    # Given: the inventory steps wrote through that only one lamp is left (MySQL still says 5)
    redis_client.set(available_key("lamp"), "1")

    # When / Then: two lamps are obviously out of stock, and nothing is written
    with pytest.raises(grpc.RpcError) as error:
        edge.create([("lamp", 2)])
    assert status_of(error.value) == grpc.StatusCode.FAILED_PRECONDITION
    assert "lamp" in str(error.value.details())
    assert edge.count("orders") == 0
    assert edge.create([("lamp", 1)]).status == pb.ORDER_STATUS_PENDING


def test_more_than_the_stock_is_refused_from_mysql_on_a_cache_miss(
    edge: Edge, shop: dict[str, tuple[int, Decimal]]
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        edge.create([("lamp", 6)])
    assert status_of(error.value) == grpc.StatusCode.FAILED_PRECONDITION
    assert edge.count("orders") == 0


def test_the_same_idempotency_key_returns_the_same_order(
    edge: Edge, shop: dict[str, tuple[int, Decimal]]
) -> None:
    first = edge.create([("book", 1)], idempotency_key="key-1")
    again = edge.create([("book", 1)], idempotency_key="key-1")

    assert again.order_id == first.order_id
    assert edge.count("orders") == 1
    assert len(edge.machines.executions(edge.machines.saga_arn)) == 1


def test_the_same_key_for_another_user_is_another_order(
    edge: Edge, shop: dict[str, tuple[int, Decimal]]
) -> None:
    alice = edge.create([("book", 1)], idempotency_key="shared")
    bob = edge.create([("book", 1)], idempotency_key="shared", sub="bob")
    assert alice.order_id != bob.order_id


def test_the_same_key_with_another_body_is_already_exists(
    edge: Edge, shop: dict[str, tuple[int, Decimal]]
) -> None:
    edge.create([("book", 1)], idempotency_key="key-2")
    with pytest.raises(grpc.RpcError) as error:
        edge.create([("book", 2)], idempotency_key="key-2")
    assert status_of(error.value) == grpc.StatusCode.ALREADY_EXISTS
    assert edge.count("orders") == 1


def test_a_stored_order_whose_start_was_throttled_is_answered_pending_and_started_on_retry(
    edge_factory: EdgeFactory, shop: dict[str, tuple[int, Decimal]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: an edge whose Step Functions endpoint throttles every StartExecution
    endpoint = StepFunctionsEndpoint(throttle=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SFN", endpoint.url)
    edge = edge_factory()

    # When: an order is created
    order = edge.create([("book", 1)], idempotency_key="retry-me")

    # Then: it is stored PENDING under the ARN its execution will have, after the client backed
    # off and tried again (botocore's standard retry mode: three attempts) ...
    assert order.status == pb.ORDER_STATUS_PENDING
    expected_arn = f"{edge.machines.saga_arn.replace(':stateMachine:', ':execution:')}:{order.order_id}"
    assert stored_arn(edge, order.order_id) == expected_arn
    assert (endpoint.throttled, endpoint.started) == (3, [])
    # ... and a retry of the request, once Step Functions answers again, starts it
    endpoint.throttle = False
    again = edge.create([("book", 1)], idempotency_key="retry-me")
    assert again.order_id == order.order_id
    assert endpoint.started == [order.order_id]
    endpoint.stop()


def stored_arn(edge: Edge, order_id: str) -> str | None:
    """The execution ARN stored for the order (the API no longer shows it)."""
    return edge.sql("SELECT execution_arn FROM orders WHERE order_id = %s", (order_id,))[0]["execution_arn"]  # type: ignore[no-any-return]


LONG = "x" * 300


@pytest.mark.parametrize(
    ("fields", "items", "violated"),
    [
        ({}, [], "items"),
        ({}, [("book", 0)], "items[0].quantity"),
        ({}, [("book", -1)], "items[0].quantity"),
        ({}, [("book", 1001)], "items[0].quantity"),
        ({}, [("book", 2**31 - 1)], "items[0].quantity"),
        ({}, [("book", 1), ("pen", 1), ("book", 2)], "items[2].product_id"),
        ({}, [(f"p{i}", 1) for i in range(101)], "items"),
        ({}, [("b" * 37, 1)], "items[0].product_id"),
        ({}, [("book;DROP TABLE orders", 1)], "items[0].product_id"),
        ({}, [("", 1)], "items[0].product_id"),
        ({"idempotency_key": ""}, [("book", 1)], "idempotency_key"),
        ({"idempotency_key": LONG}, [("book", 1)], "idempotency_key"),
        ({"payment_token": ""}, [("book", 1)], "payment_token"),
        ({"payment_token": LONG}, [("book", 1)], "payment_token"),
        ({"email": "not-an-address"}, [("book", 1)], "email"),
        ({"email": LONG + "@example.com"}, [("book", 1)], "email"),
    ],
    ids=[
        "no-items",
        "zero-quantity",
        "negative-quantity",
        "huge-quantity",
        "int32-max-quantity",
        "same-product-twice",
        "101-lines",
        "oversized-product-id",
        "malformed-product-id",
        "empty-product-id",
        "missing-idempotency-key",
        "oversized-idempotency-key",
        "missing-payment-token",
        "oversized-payment-token",
        "malformed-email",
        "oversized-email",
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field_and_writes_nothing(
    edge: Edge,
    shop: dict[str, tuple[int, Decimal]],
    fields: dict[str, str],
    items: list[tuple[str, int]],
    violated: str,
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        edge.create(items, **fields)

    assert status_of(error.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert violated in field_violations(error.value)
    assert (edge.count("orders"), edge.count("order_items")) == (0, 0)
    assert edge.machines.executions(edge.machines.saga_arn) == []


def test_an_unknown_product_is_failed_precondition_and_writes_nothing(
    edge: Edge, shop: dict[str, tuple[int, Decimal]]
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        edge.create([("book", 1), ("unicorn", 1)])
    assert status_of(error.value) == grpc.StatusCode.FAILED_PRECONDITION
    assert "unicorn" in str(error.value.details())
    assert edge.count("orders") == 0


def test_products_in_two_currencies_cannot_share_an_order(
    edge: Edge, shop: dict[str, tuple[int, Decimal]]
) -> None:
    edge.sql("UPDATE inventory SET currency = 'USD' WHERE product_id = 'pen'")
    with pytest.raises(grpc.RpcError) as error:
        edge.create([("book", 1), ("pen", 1)])
    assert status_of(error.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value) == ["items"]
    assert edge.count("orders") == 0


def test_concurrent_requests_with_one_key_make_one_order(
    edge: Edge, shop: dict[str, tuple[int, Decimal]]
) -> None:
    # Given six clients with one idempotency key, released together by a barrier (a client that
    # started late would find the order made, and test nothing)
    key = str(uuid.uuid4())
    start = threading.Barrier(6, timeout=60)

    def create(_: int) -> pb.Order:
        start.wait()
        return edge.create([("pen", 3)], idempotency_key=key)

    # When they all send CreateOrder at once
    with ThreadPoolExecutor(6) as pool:
        orders = list(pool.map(create, range(6)))
    # Then all get the one order, and one saga started
    assert len({order.order_id for order in orders}) == 1
    assert edge.count("orders") == 1
    assert len(edge.machines.executions(edge.machines.saga_arn)) == 1
