"""A service acts for the customer it names: limits, stream slots and idempotency keys are the
customer's, with a second rate limit per app client; the metadata is checked before anything runs."""

from decimal import Decimal

import grpc
import pytest

from grpc_edge.auth import CUSTOMER_METADATA
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from tests.support.clock import Clock
from tests.support.edge import EdgeFactory, Metadata, field_violations, status_of

Catalog = dict[str, tuple[int, Decimal]]
# 15 s into the minute that starts at 1,700,000,040 s since the epoch: no real minute ends between calls
MID_MINUTE = 1_700_000_040 + 15


def list_status(edge_stub: object, metadata: Metadata) -> grpc.StatusCode:
    try:
        edge_stub.ListOrders(pb.ListOrdersRequest(), metadata=metadata, timeout=30)  # type: ignore[attr-defined]
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_an_app_clients_own_limit_counts_all_its_customers_together(edge_factory: EdgeFactory) -> None:
    # Given a limit of 3 calls a minute per customer and 4 per app client
    edge = edge_factory(rate_limit_per_minute=3, rate_limit_per_client_per_minute=4, clock=Clock(MID_MINUTE))
    answers = [
        list_status(edge.stub, edge.service_auth("storefront", customer))
        for customer in ("carol", "dave", "erin", "frank", "gina")
    ]
    # Then the storefront's fifth call in the minute is refused, whoever it is for
    assert answers == [grpc.StatusCode.OK] * 4 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    # while another app client, and a customer's own app, have allowances of their own
    assert list_status(edge.stub, edge.service_auth("support-desk", "gina")) == grpc.StatusCode.OK
    assert list_status(edge.stub, edge.auth("gina")) == grpc.StatusCode.OK


def test_watch_slots_are_the_customers_behind_one_service(edge_factory: EdgeFactory, shop: Catalog) -> None:
    # Given one open stream per customer, and the storefront watching carol's order for her
    edge = edge_factory(watch_max_per_user=1)
    carols = edge.create([("pen", 1)], metadata=edge.service_auth("storefront", "carol"))
    daves = edge.create([("pen", 1)], metadata=edge.service_auth("storefront", "dave"))
    watch = edge.stub.WatchOrder
    first = watch(
        pb.WatchOrderRequest(order_id=carols.order_id), metadata=edge.service_auth("storefront", "carol")
    )
    assert next(first).order_id == carols.order_id
    # When it opens a second stream for carol, then it is refused, while dave's is served
    second = watch(
        pb.WatchOrderRequest(order_id=carols.order_id), metadata=edge.service_auth("storefront", "carol")
    )
    with pytest.raises(grpc.RpcError) as error:
        next(second)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for_dave = watch(
        pb.WatchOrderRequest(order_id=daves.order_id), metadata=edge.service_auth("storefront", "dave")
    )
    assert next(for_dave).order_id == daves.order_id
    first.cancel()
    for_dave.cancel()


def test_idempotency_keys_are_per_customer_behind_one_service(
    edge_factory: EdgeFactory, shop: Catalog
) -> None:
    edge = edge_factory()
    for_carol = edge.create(
        [("pen", 1)], metadata=edge.service_auth("storefront", "carol"), idempotency_key="k-1"
    )
    for_dave = edge.create(
        [("book", 1)], metadata=edge.service_auth("storefront", "dave"), idempotency_key="k-1"
    )
    assert (for_carol.user_id, for_dave.user_id) == ("carol", "dave")
    assert for_carol.order_id != for_dave.order_id
    # and a replay of carol's key is carol's order, through the storefront or her own app
    assert edge.create([("pen", 1)], sub="carol", idempotency_key="k-1").order_id == for_carol.order_id


def test_a_customer_named_twice_is_invalid_and_changes_nothing(
    edge_factory: EdgeFactory, shop: Catalog
) -> None:
    edge = edge_factory()
    twice = (*edge.service_auth("storefront", "carol"), (CUSTOMER_METADATA, "carol"))
    with pytest.raises(grpc.RpcError) as error:
        edge.create([("pen", 1)], metadata=twice)
    assert status_of(error.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value) == [CUSTOMER_METADATA]
    assert edge.count("orders") == 0
