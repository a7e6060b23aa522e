"""Bad input and abuse at the edge : whole-string matching, undecodable requests, token
subjects that could never own an order, and WatchOrder streams capped per user and in time."""

import uuid
from typing import Any

import grpc
import pytest

from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from tests.support.edge import ALL_SCOPES, Edge, EdgeFactory, field_violations, make_token


def test_an_order_id_with_a_trailing_newline_is_invalid(edge: Edge) -> None:
    with pytest.raises(grpc.RpcError) as error:
        edge.stub.GetOrder(pb.GetOrderRequest(order_id=f"{uuid.uuid4()}\n"), metadata=edge.auth())
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value) == ["order_id"]


def test_an_email_with_a_trailing_newline_is_invalid_and_stores_nothing(
    edge: Edge, shop: dict[str, Any]
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        edge.create([("pen", 1)], email="alice@example.com\n")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value) == ["email"]
    assert edge.count("orders") == 0


def test_a_string_that_is_not_utf8_is_invalid_argument_not_internal(edge: Edge) -> None:
    # Given a GetOrderRequest whose order_id (field 1) holds bytes that are not UTF-8
    raw = bytes([0x0A, 0x02, 0xFF, 0xFE])
    get_order: grpc.UnaryUnaryMultiCallable[bytes, pb.Order] = edge.channel.unary_unary(
        "/orders.v1.OrderService/GetOrder", request_serializer=None, response_deserializer=pb.Order.FromString
    )
    # When it is sent, then the edge answers INVALID_ARGUMENT naming the request
    with pytest.raises(grpc.RpcError) as error:
        get_order(raw, metadata=edge.auth())
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value) == ["request"]
    # and an undecodable request without a token is still UNAUTHENTICATED first
    with pytest.raises(grpc.RpcError) as error:
        get_order(raw)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("subject", ["", " ", "u" * 129, " alice"])
def test_a_token_subject_that_could_never_own_an_order_is_unauthenticated(edge: Edge, subject: str) -> None:
    metadata = (("authorization", f"Bearer {make_token(edge.issuer, subject, ALL_SCOPES)}"),)
    with pytest.raises(grpc.RpcError) as error:
        edge.stub.ListOrders(pb.ListOrdersRequest(), metadata=metadata)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_one_user_cannot_take_every_watch_slot(edge_factory: EdgeFactory, shop: dict[str, Any]) -> None:
    # Given an edge allowing one open WatchOrder stream per user, and alice watching her order
    edge = edge_factory(watch_max_per_user=1)
    mine, theirs = edge.create([("pen", 1)]), edge.create([("pen", 1)], sub="bob")
    first = edge.stub.WatchOrder(pb.WatchOrderRequest(order_id=mine.order_id), metadata=edge.auth())
    assert next(first).order_id == mine.order_id
    # When she opens a second one, then it is refused, while bob can still watch his
    second = edge.stub.WatchOrder(pb.WatchOrderRequest(order_id=mine.order_id), metadata=edge.auth())
    with pytest.raises(grpc.RpcError) as error:
        next(second)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    bobs = edge.stub.WatchOrder(pb.WatchOrderRequest(order_id=theirs.order_id), metadata=edge.auth("bob"))
    assert next(bobs).order_id == theirs.order_id
    first.cancel()
    bobs.cancel()


def test_a_watch_stream_ends_after_its_maximum_lifetime(
    edge_factory: EdgeFactory, shop: dict[str, Any]
) -> None:
    # Given streams that live at most a second, on an order that stays PENDING
    edge = edge_factory(watch_max_seconds=1)
    order = edge.create([("pen", 1)])
    # When alice watches it, then the stream ends by itself, OK, after the order's first state
    updates = list(edge.stub.WatchOrder(pb.WatchOrderRequest(order_id=order.order_id), metadata=edge.auth()))
    assert [update.status for update in updates] == [pb.ORDER_STATUS_PENDING]
