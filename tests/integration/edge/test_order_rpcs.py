"""GetOrder, ListOrders, CancelOrder and WatchOrder through a real channel."""

from collections.abc import Callable
from decimal import Decimal

import grpc
import pytest
import redis

from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from order_saga.feeds import status_channel
from tests.support.edge import Edge, EdgeFactory, dead_redis, field_violations, insert_orphan, status_of
from tests.support.waiting import Deadline

Catalog = dict[str, tuple[int, Decimal]]


def set_status(edge: Edge, order_id: str, status: str, redis_client: "redis.Redis | None" = None) -> None:
    """What a saga step does: commit the new status, then publish it."""
    edge.sql("UPDATE orders SET status = %s WHERE order_id = %s", (status, order_id))
    if redis_client is not None:
        redis_client.publish(status_channel(order_id), status)


# -- GetOrder ---------------------------------------------------------------------------------


def test_get_order_returns_the_callers_order(edge: Edge, shop: Catalog) -> None:
    created = edge.create([("pen", 4)])
    got = edge.stub.GetOrder(pb.GetOrderRequest(order_id=created.order_id), metadata=edge.auth())
    assert got == created
    assert got.created_at.seconds > 0


def test_another_users_order_is_not_found(edge: Edge, shop: Catalog) -> None:
    created = edge.create([("pen", 4)], sub="alice")
    with pytest.raises(grpc.RpcError) as error:
        edge.stub.GetOrder(pb.GetOrderRequest(order_id=created.order_id), metadata=edge.auth("mallory"))
    assert status_of(error.value) == grpc.StatusCode.NOT_FOUND


def test_an_unknown_order_is_not_found(edge: Edge) -> None:
    with pytest.raises(grpc.RpcError) as error:
        edge.stub.GetOrder(
            pb.GetOrderRequest(order_id="00000000-0000-4000-8000-000000000000"), metadata=edge.auth()
        )
    assert status_of(error.value) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "order_id", ["", "42", "not-a-uuid", "00000000-0000-4000-8000-00000000000G", "A" * 36]
)
def test_a_malformed_order_id_is_invalid_argument(edge: Edge, order_id: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: edge.stub.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=edge.auth()),
        lambda: edge.stub.CancelOrder(pb.CancelOrderRequest(order_id=order_id), metadata=edge.auth()),
        lambda: next(edge.stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id), metadata=edge.auth())),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert status_of(error.value) == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(error.value) == ["order_id"]


# -- ListOrders -------------------------------------------------------------------------------


def test_list_orders_pages_through_the_callers_orders_newest_first(edge: Edge, shop: Catalog) -> None:
    # Given: five orders of alice (one second apart in created_at) and one of bob
    created = [edge.create([("pen", 1)]).order_id for _ in range(5)]
    for age, order_id in enumerate(reversed(created)):
        edge.sql(
            "UPDATE orders SET created_at = CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND WHERE order_id = %s",
            (age, order_id),
        )
    edge.create([("pen", 1)], sub="bob")

    # When: alice lists them two at a time
    seen, token, pages = [], "", 0
    while True:
        page = edge.stub.ListOrders(pb.ListOrdersRequest(page_size=2, page_token=token), metadata=edge.auth())
        seen += [order.order_id for order in page.orders]
        pages += 1
        token = page.next_page_token
        if not token:
            break

    # Then: all five, newest first, no repeats, none of bob's
    assert seen == list(reversed(created))
    assert pages == 3


def test_list_orders_filters_by_status_and_caps_the_page_size(edge: Edge, shop: Catalog) -> None:
    first, second, third = (edge.create([("pen", 1)]).order_id for _ in range(3))
    set_status(edge, second, "CONFIRMED")

    confirmed = edge.stub.ListOrders(
        pb.ListOrdersRequest(status=pb.ORDER_STATUS_CONFIRMED), metadata=edge.auth()
    )
    assert [order.order_id for order in confirmed.orders] == [second]
    everything = edge.stub.ListOrders(pb.ListOrdersRequest(page_size=100_000), metadata=edge.auth())
    assert {order.order_id for order in everything.orders} == {first, second, third}
    assert everything.next_page_token == ""


@pytest.mark.parametrize(
    ("request_fields", "violated"),
    [
        ({"page_size": -1}, "page_size"),
        ({"page_token": "garbage!"}, "page_token"),
        ({"page_token": "eyJ0IjogMX0"}, "page_token"),
        ({"status": 99}, "status"),
    ],
    ids=["negative-page-size", "garbage-token", "forged-token", "unknown-status"],
)
def test_bad_list_requests_are_invalid_argument(
    edge: Edge, request_fields: dict[str, object], violated: str
) -> None:
    with pytest.raises(grpc.RpcError) as error:
        edge.stub.ListOrders(pb.ListOrdersRequest(**request_fields), metadata=edge.auth())  # type: ignore[arg-type]
    assert status_of(error.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value) == [violated]


def test_a_page_token_only_continues_its_own_filter(edge: Edge, shop: Catalog) -> None:
    for _ in range(3):
        edge.create([("pen", 1)])
    page = edge.stub.ListOrders(pb.ListOrdersRequest(page_size=1), metadata=edge.auth())
    with pytest.raises(grpc.RpcError) as error:
        edge.stub.ListOrders(
            pb.ListOrdersRequest(page_size=1, page_token=page.next_page_token, status=pb.ORDER_STATUS_FAILED),
            metadata=edge.auth(),
        )
    assert status_of(error.value) == grpc.StatusCode.INVALID_ARGUMENT


# -- CancelOrder ------------------------------------------------------------------------------


def cancel(edge: Edge, order_id: str, sub: str = "alice", reason: str = "changed my mind") -> pb.Order:
    return edge.stub.CancelOrder(
        pb.CancelOrderRequest(order_id=order_id, reason=reason), metadata=edge.auth(sub)
    )


def test_cancelling_a_pending_order_flags_it_for_the_saga(edge: Edge, shop: Catalog) -> None:
    order = edge.create([("book", 1)])
    cancelled = cancel(edge, order.order_id)
    assert cancel(edge, order.order_id) == cancelled  # a retry changes nothing
    assert (cancelled.status, cancelled.cancel_requested) == (pb.ORDER_STATUS_PENDING, True)
    [row] = edge.sql("SELECT cancel_requested, version FROM orders WHERE order_id = %s", (order.order_id,))
    assert (row["cancel_requested"], row["version"]) == (1, 1)
    assert edge.sql(
        "SELECT step, status FROM saga_log WHERE saga_id = %s ORDER BY id", (order.order_id,)
    ) == [
        {"step": "CreateOrder", "status": "PENDING"},
        {"step": "CancelOrder", "status": "REQUESTED"},
    ]
    assert edge.machines.executions(edge.machines.cancellation_arn) == []


def test_cancelling_a_confirmed_order_starts_the_cancellation_saga_once(
    edge: Edge, shop: Catalog, redis_client: "redis.Redis"
) -> None:
    order = edge.create([("book", 1)])
    set_status(edge, order.order_id, "CONFIRMED")
    feed = redis_client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    feed.subscribe(status_channel(order.order_id))

    cancelled = cancel(edge, order.order_id)
    again = cancel(edge, order.order_id)  # a retry starts nothing new

    assert cancelled.status == again.status == pb.ORDER_STATUS_CANCELLING
    [execution] = edge.machines.executions(edge.machines.cancellation_arn)
    assert execution["name"] == order.order_id
    assert next_message(feed) == "CANCELLING"
    feed.close()


def test_cancelling_a_cancelled_order_returns_it_unchanged(edge: Edge, shop: Catalog) -> None:
    order = edge.create([("book", 1)])
    set_status(edge, order.order_id, "CANCELLED")
    before = edge.sql("SELECT version, updated_at FROM orders WHERE order_id = %s", (order.order_id,))
    assert cancel(edge, order.order_id).status == pb.ORDER_STATUS_CANCELLED
    assert edge.sql("SELECT version, updated_at FROM orders WHERE order_id = %s", (order.order_id,)) == before


@pytest.mark.parametrize("status", ["FAILED", "NEEDS_ATTENTION"])
def test_cancelling_a_failed_order_is_failed_precondition(edge: Edge, shop: Catalog, status: str) -> None:
    order = edge.create([("book", 1)])
    set_status(edge, order.order_id, status)
    with pytest.raises(grpc.RpcError) as error:
        cancel(edge, order.order_id)
    assert status_of(error.value) == grpc.StatusCode.FAILED_PRECONDITION


def test_cancelling_another_users_order_is_not_found_and_changes_nothing(edge: Edge, shop: Catalog) -> None:
    order = edge.create([("book", 1)])
    with pytest.raises(grpc.RpcError) as error:
        cancel(edge, order.order_id, sub="mallory")
    assert status_of(error.value) == grpc.StatusCode.NOT_FOUND
    assert edge.sql("SELECT cancel_requested FROM orders")[0]["cancel_requested"] == 0


def test_an_oversized_reason_is_invalid_argument(edge: Edge, shop: Catalog) -> None:
    order = edge.create([("book", 1)])
    with pytest.raises(grpc.RpcError) as error:
        cancel(edge, order.order_id, reason="x" * 501)
    assert field_violations(error.value) == ["reason"]
    assert edge.sql("SELECT cancel_requested FROM orders")[0]["cancel_requested"] == 0


# -- WatchOrder -------------------------------------------------------------------------------


def test_watch_order_streams_pending_then_confirmed_woken_by_the_publish(
    edge_factory: EdgeFactory, shop: Catalog, redis_client: "redis.Redis"
) -> None:
    # Given: an edge whose periodic re-read would come far too late to matter
    edge = edge_factory(watch_reread_seconds=3600)
    order = edge.create([("book", 1)])
    stream = edge.stub.WatchOrder(
        pb.WatchOrderRequest(order_id=order.order_id), metadata=edge.auth(), timeout=60
    )
    # and the stream has shown the order PENDING (it subscribed before that first read)
    assert next(stream).status == pb.ORDER_STATUS_PENDING
    # When: another writer (the saga's ConfirmOrder) commits CONFIRMED and publishes it
    set_status(edge, order.order_id, "CONFIRMED", redis_client)
    # Then: the publish wakes the stream, which shows CONFIRMED and ends there
    assert [o.status for o in stream] == [pb.ORDER_STATUS_CONFIRMED]


def test_watch_order_re_reads_the_order_when_a_publish_is_lost(
    edge_factory: EdgeFactory, shop: Catalog
) -> None:
    # Given: an edge re-reading watched orders often, and a stream that showed PENDING
    edge = edge_factory(watch_reread_seconds=0.2)
    order = edge.create([("book", 1)])
    stream = edge.stub.WatchOrder(
        pb.WatchOrderRequest(order_id=order.order_id), metadata=edge.auth(), timeout=60
    )
    assert next(stream).status == pb.ORDER_STATUS_PENDING
    # When: the status is committed but its publish is lost (it is sent after the commit)
    set_status(edge, order.order_id, "CONFIRMED")
    # Then: the periodic re-read finds it, and the stream ends there
    assert [o.status for o in stream] == [pb.ORDER_STATUS_CONFIRMED]


def test_watch_order_without_redis_is_unavailable(edge_factory: EdgeFactory, shop: Catalog) -> None:
    # Given: an edge whose Redis (the status feed) does not answer; MySQL does
    edge = edge_factory(cache=dead_redis())
    order_id = insert_orphan(edge.database, age_seconds=0)  # a PENDING order of alice's
    # When / Then: the watch is UNAVAILABLE (retry later), in the customer's words (the cache's
    # address and error stay in the edge's log)
    with pytest.raises(grpc.RpcError) as error:
        next(edge.stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id), metadata=edge.auth(), timeout=60))
    assert status_of(error.value) == grpc.StatusCode.UNAVAILABLE
    assert error.value.details() == "the order cache is briefly unavailable; retry shortly"


def test_watch_order_of_a_terminal_order_sends_it_once(edge: Edge, shop: Catalog) -> None:
    order = edge.create([("book", 1)])
    set_status(edge, order.order_id, "FAILED")
    statuses = [
        o.status
        for o in edge.stub.WatchOrder(pb.WatchOrderRequest(order_id=order.order_id), metadata=edge.auth())
    ]
    assert statuses == [pb.ORDER_STATUS_FAILED]


def test_watch_order_honours_the_deadline_and_frees_its_subscription(
    edge: Edge, shop: Catalog, redis_client: "redis.Redis"
) -> None:
    order = edge.create([("book", 1)])
    stream = edge.stub.WatchOrder(
        pb.WatchOrderRequest(order_id=order.order_id), metadata=edge.auth(), timeout=5
    )
    assert next(stream).status == pb.ORDER_STATUS_PENDING
    with pytest.raises(grpc.RpcError) as error:
        next(stream)
    assert status_of(error.value) == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until_unsubscribed(redis_client, status_channel(order.order_id))


def test_a_cancelled_watch_frees_its_subscription(
    edge: Edge, shop: Catalog, redis_client: "redis.Redis"
) -> None:
    order = edge.create([("book", 1)])
    stream = edge.stub.WatchOrder(pb.WatchOrderRequest(order_id=order.order_id), metadata=edge.auth())
    next(stream)
    assert redis_client.pubsub_numsub(status_channel(order.order_id))[0][1] == 1
    stream.cancel()
    wait_until_unsubscribed(redis_client, status_channel(order.order_id))


def test_watching_another_users_order_is_not_found(edge: Edge, shop: Catalog) -> None:
    order = edge.create([("book", 1)])
    with pytest.raises(grpc.RpcError) as error:
        next(
            edge.stub.WatchOrder(pb.WatchOrderRequest(order_id=order.order_id), metadata=edge.auth("mallory"))
        )
    assert status_of(error.value) == grpc.StatusCode.NOT_FOUND


def next_message(feed: "redis.client.PubSub", seconds: float = 60) -> str:
    """The next published message (subscription confirmations are skipped); fails after `seconds`."""
    messages: list[str] = []

    def received() -> bool:
        message = feed.get_message(timeout=0.2)
        if message is not None:
            messages.append(str(message["data"]))
        return bool(messages)

    Deadline(seconds).wait_for(received, "a message on the order's status channel", every=0)
    return messages[0]


def wait_until_unsubscribed(client: "redis.Redis", channel: str, seconds: float = 60) -> None:
    Deadline(seconds).wait_for(
        lambda: client.pubsub_numsub(channel)[0][1] == 0, f"no subscriber left on {channel}"
    )


def test_watch_streams_may_hold_at_most_half_the_server_threads(
    edge_factory: EdgeFactory, shop: Catalog
) -> None:
    # Given: a server with 4 threads, and two open watches (its limit)
    edge = edge_factory(grpc_max_workers=4)
    order = edge.create([("book", 1)])
    request = pb.WatchOrderRequest(order_id=order.order_id)
    open_streams = [edge.stub.WatchOrder(request, metadata=edge.auth()) for _ in range(2)]
    for stream in open_streams:
        next(stream)

    # When / Then: a third is turned away, and unary RPCs are still served
    with pytest.raises(grpc.RpcError) as error:
        next(edge.stub.WatchOrder(request, metadata=edge.auth()))
    assert status_of(error.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert edge.stub.GetOrder(pb.GetOrderRequest(order_id=order.order_id), metadata=edge.auth()) == order

    # ... and a closed stream frees its slot
    open_streams[0].cancel()

    def watch_admitted() -> bool:
        try:
            next(edge.stub.WatchOrder(request, metadata=edge.auth(), timeout=10))
        except grpc.RpcError:
            return False
        return True

    Deadline(60).wait_for(watch_admitted, "a watch slot to be freed", every=0.2)
    open_streams[1].cancel()
