"""What operators rely on: rate limits, UNAVAILABLE on a dead dependency, health, reflection,
Prometheus metrics, access logs, and the reconciler of orphaned orders."""

import threading
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import grpc
import pytest
import redis
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import start_http_server

from devstack.stepfunctions_endpoint import StepFunctionsEndpoint
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.reconciler import Pass, Reconciler
from grpc_edge.server import build_order_service
from order_saga.db import Database
from order_saga.watchdog import create_watchdog
from tests.support.clock import Clock
from tests.support.edge import Edge, EdgeFactory, dead_redis, insert_orphan, status_of
from tests.support.processes import free_port

Catalog = dict[str, tuple[int, Decimal]]


def test_more_requests_than_the_limit_are_resource_exhausted_per_user(edge_factory: EdgeFactory) -> None:
    # Given: a limit of 3 requests a minute, and a clock held 15 s into a minute (the minute that
    # starts at 1,700,000,040 s since the epoch), so no real minute ends between the calls
    clock = Clock(1_700_000_040 + 15)
    edge = edge_factory(rate_limit_per_minute=3, clock=clock)
    for _ in range(3):
        edge.stub.ListOrders(pb.ListOrdersRequest(), metadata=edge.auth("alice"))

    # When: alice sends a fourth in that minute
    with pytest.raises(grpc.RpcError) as error:
        edge.stub.ListOrders(pb.ListOrdersRequest(), metadata=edge.auth("alice"))

    # Then: it is refused, and told to come back when the minute ends (45 s on, rounded up)
    assert status_of(error.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(error.value)
    retry = error_details_pb2.RetryInfo()
    assert status is not None
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 46
    # another user has an allowance of their own
    edge.stub.ListOrders(pb.ListOrdersRequest(), metadata=edge.auth("bob"))
    # and when the next minute starts, alice has a new one
    clock.now = 1_700_000_040 + 60
    edge.stub.ListOrders(pb.ListOrdersRequest(), metadata=edge.auth("alice"))


def test_the_rate_limit_fails_open_when_redis_is_down(edge_factory: EdgeFactory) -> None:
    # Given: a limit of one request a minute, kept in a Redis that does not answer
    edge = edge_factory(rate_limit_per_minute=1, cache=dead_redis())
    # When / Then: requests over the limit are still served (the limit protects, never blocks)
    for _ in range(3):
        assert list(edge.stub.ListOrders(pb.ListOrdersRequest(), metadata=edge.auth("alice")).orders) == []


def test_a_database_that_does_not_answer_is_unavailable(edge_factory: EdgeFactory) -> None:
    edge = edge_factory(mysql_port=free_port(), mysql_connect_timeout=1)
    with pytest.raises(grpc.RpcError) as error:
        edge.stub.GetOrder(pb.GetOrderRequest(order_id=str(uuid.uuid4())), metadata=edge.auth())
    assert status_of(error.value) == grpc.StatusCode.UNAVAILABLE
    assert "MYSQL_HOST" not in str(error.value.details())  # operators find it in the log


def test_health_and_reflection_answer_without_a_token(edge: Edge) -> None:
    health = health_pb2_grpc.HealthStub(edge.channel)
    for service in ("", "orders.v1.OrderService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(edge.channel)
    [answer] = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {service.name for service in answer.list_services_response.service}
    assert {"orders.v1.OrderService", "grpc.health.v1.Health"} <= names


def test_metrics_count_each_method_and_code_with_latency(edge: Edge, shop: Catalog) -> None:
    # Given: the metrics endpoint of this edge
    server, thread = start_http_server(0, addr="127.0.0.1", registry=edge.registry)
    try:
        # When: one good order, and one GetOrder of an unknown order
        edge.create([("pen", 1)])
        with pytest.raises(grpc.RpcError):
            edge.stub.GetOrder(pb.GetOrderRequest(order_id=str(uuid.uuid4())), metadata=edge.auth())

        # Then: a scrape shows both, by method and code, with their latency histograms
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        server.shutdown()
        thread.join()
    labels = 'grpc_code="{code}",grpc_method="{method}",grpc_service="orders.v1.OrderService"'
    assert f"grpc_server_handled_total{{{labels.format(code='OK', method='CreateOrder')}}} 1.0" in text
    assert f"grpc_server_handled_total{{{labels.format(code='NOT_FOUND', method='GetOrder')}}} 1.0" in text
    assert (
        f"grpc_server_handling_seconds_count{{{labels.format(code='OK', method='CreateOrder')}}} 1.0" in text
    )


def test_the_access_log_carries_the_order_id_as_correlation_id(
    edge: Edge, shop: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    order = edge.create([("pen", 1)])
    [entry] = [vars(record) for record in caplog.records if getattr(record, "rpc", None) == "CreateOrder"]
    assert (entry["correlation_id"], entry["code"], entry["customer"], entry["client"]) == (
        order.order_id, "OK", "alice", "order-saga-local-app",
    )  # fmt: skip
    assert isinstance(entry["duration_ms"], float)  # how long it took is logged; its value is the machine's


def test_the_reconciler_starts_an_orphaned_order_exactly_once(
    edge: Edge, shop: Catalog, redis_client: "redis.Redis"
) -> None:
    # Given: an orphan two hours old, past the hour of grace, and a fresh order that may still be
    # starting (an hour from the grace's end, however slow the test runs)
    orphan = insert_orphan(edge.database, age_seconds=7200)
    fresh = insert_orphan(edge.database, age_seconds=0)
    reconcilers = [
        Reconciler(
            build_order_service(edge.settings, redis_client),
            create_watchdog(edge.settings, Database(edge.settings), redis_client),
            interval_seconds=0,
            grace_seconds=3600,
            watchdog_grace_seconds=3600,
        )
        for _ in range(3)
    ]
    start = threading.Barrier(3, timeout=60)

    def reconcile(reconciler: Reconciler) -> Pass:
        start.wait()
        return reconciler.run_once()

    # When: three edge tasks reconcile at the same time (released together), then once more each
    with ThreadPoolExecutor(3) as pool:
        first_pass = list(pool.map(reconcile, reconcilers))
    second_pass = [r.run_once() for r in reconcilers]

    # Then: the orphan's saga runs once, under its id, and the fresh order is left alone
    executions = edge.machines.executions(edge.machines.saga_arn)
    assert [e["name"] for e in executions] == [orphan]
    [row] = edge.sql("SELECT execution_arn FROM orders WHERE order_id = %s", (orphan,))
    assert row["execution_arn"] == executions[0]["executionArn"]
    assert all(done.started in ([orphan], []) for done in first_pass)
    assert [(done.started, done.settled) for done in second_pass] == [([], [])] * 3
    assert edge.sql("SELECT execution_arn FROM orders WHERE order_id = %s", (fresh,)) == [
        {"execution_arn": None}
    ]


def test_an_order_throttled_at_creation_is_started_later_by_the_reconciler_once(
    edge_factory: EdgeFactory, shop: Catalog, redis_client: "redis.Redis", monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: an order created while Step Functions throttled every StartExecution
    endpoint = StepFunctionsEndpoint(throttle=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SFN", endpoint.url)
    edge = edge_factory()
    order = edge.create([("pen", 1)])
    assert (order.status, endpoint.started) == (pb.ORDER_STATUS_PENDING, [])

    # When: Step Functions answers again and the reconciler passes, twice
    endpoint.throttle = False
    reconciler = Reconciler(
        build_order_service(edge.settings, redis_client),
        None,
        interval_seconds=0,
        grace_seconds=0,
        watchdog_grace_seconds=0,
    )
    passes = [reconciler.run_once(), reconciler.run_once()]

    # Then: the saga was started once, under the order's id, and the order waits for it PENDING
    assert [p.started for p in passes] == [[order.order_id], []]
    assert endpoint.started == [order.order_id]
    [row] = edge.sql("SELECT status, execution_arn FROM orders WHERE order_id = %s", (order.order_id,))
    execution_arn = f"{edge.machines.saga_arn.replace(':stateMachine:', ':execution:')}:{order.order_id}"
    assert row == {"status": "PENDING", "execution_arn": execution_arn}
    endpoint.stop()
