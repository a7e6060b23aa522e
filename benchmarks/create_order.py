"""CreateOrder throughput and latency, against two baselines measured in the same run: a bare
grpcio echo, and a bare grpcio handler doing only CreateOrder's necessary I/O.

    .venv/bin/python benchmarks/create_order.py --clients 8 --seconds 10 --rounds 2

The edge runs in this process with its whole chain (JWT check, metrics, access log, both rate
limits switched off, MySQL insert of the order, its execution ARN, its line and its saga_log entry
in one transaction, Redis pre-check) over the project's private MariaDB and Redis; StartExecution
is signed by botocore as always and answered by devstack.stepfunctions_endpoint, a minimal
endpoint in its own process, so the figure is the edge's own work and not moto's. The echo server
answers the same bytes with no work at all: the ratio shows what the edge costs over the
transport itself on this machine. The necessary-I/O baseline is a bare handler on the edge's own
grpcio server (its thread pool, options and TLS setting) that only stores the same rows (order,
line, saga_log entry in one transaction over a PyMySQL connection per thread) and sends the same
signed StartExecution to the same endpoint: the ratio shows what the edge costs beyond what any
implementation must do. It and CreateOrder alternate in `rounds` rounds, so a change of the
machine's load falls on both. Clients are threads of this process, one channel each.
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import boto3
import grpc
import pymysql
import redis
from figures import Figure, print_table
from prometheus_client import CollectorRegistry

from devstack import services
from devstack.envfile import load_env
from devstack.issuer.keys import KeyRing
from devstack.issuer.server import serving_issuer
from devstack.issuer.tokens import LocalIssuer
from devstack.paths import STATE_DIR
from devstack.scratch import create_scratch_database
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from grpc_edge.interceptors import SERVICE
from grpc_edge.server import (
    STEP_FUNCTIONS_CONFIG,
    bind,
    build_order_service,
    build_verifier,
    create_server,
    grpc_server,
)
from grpc_edge.settings import EdgeSettings
from order_saga.db import Database
from order_saga.settings import Settings
from order_saga.workflow import execution_arn_for

DATABASE = "orders_bench"
SAGA_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:OrderSaga"
ECHO_METHOD = "/bench.Echo/Echo"
BASELINE_CUSTOMER = "bench-baseline"  # the necessary-I/O baseline's orders, counted apart


@dataclass(frozen=True)
class Result:
    name: str
    calls: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float  # of this whole process (clients, servers, gRPC's threads) while measured

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds

    def percentile(self, p: float) -> float:
        return statistics.quantiles(self.latencies, n=1000)[int(p * 10) - 1] * 1000

    def row(self) -> str:
        return (
            f"| {self.name} | {self.throughput:,.0f} | {self.percentile(50):.2f} | "
            f"{self.percentile(99):.2f} | {self.cpu_seconds / self.calls * 1000:.2f} | {self.calls:,} |"
        )

    def __add__(self, other: "Result") -> "Result":
        """Two rounds of the same target as one."""
        return Result(self.name, self.calls + other.calls, self.seconds + other.seconds,
                      self.latencies + other.latencies, self.cpu_seconds + other.cpu_seconds)  # fmt: skip


def load(name: str, clients: int, seconds: float, make_call: Callable[[], Callable[[], object]]) -> Result:
    """`clients` threads calling as fast as they can for `seconds` (after a one-second warm-up)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(index: int) -> None:
        call = make_call()
        warm_until = time.monotonic() + 1
        while time.monotonic() < warm_until:
            call()
        start.wait()
        mine = latencies[index]
        while True:
            began = time.perf_counter()
            call()
            mine.append(time.perf_counter() - began)
            if time.monotonic() >= stop_at[0]:
                return

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + 3600
    start.wait()
    began, cpu_began = time.monotonic(), time.process_time()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed, cpu = time.monotonic() - began, time.process_time() - cpu_began
    merged = [value for per_client in latencies for value in per_client]
    return Result(name, len(merged), elapsed, merged, cpu)


def prepare_database(base: Settings) -> Settings:
    settings = create_scratch_database(base, DATABASE).model_copy(
        update={"redis_url": base.redis_url.rsplit("/", 1)[0] + "/14"}
    )
    database = Database(settings)
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO inventory (product_id, name, stock, reserved, unit_price, currency) "
            "VALUES ('bench-item', 'Bench item', 1000000000, 0, 1.00, 'EUR')"
        )
    database.close()
    redis.Redis.from_url(settings.redis_url).flushdb()
    return settings


def order_request() -> pb.CreateOrderRequest:
    """A new order each time (a fresh idempotency key): every call inserts and starts one."""
    return pb.CreateOrderRequest(
        idempotency_key=str(uuid.uuid4()),
        items=[pb.OrderItem(product_id="bench-item", quantity=1)],
        payment_token="tok_visa",  # noqa: S106 -- the gateway server's test card
        email="bench@example.com",
    )


def stored_orders(settings: Settings) -> dict[str, tuple[int, int, int]]:
    """Per customer: orders stored with their execution ARN, their lines, their saga_log entries."""
    database = Database(settings)
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT o.user_id, COUNT(*) AS orders, "
            "(SELECT COUNT(*) FROM order_items i JOIN orders x USING (order_id) WHERE x.user_id = o.user_id) "
            "AS items, (SELECT COUNT(*) FROM saga_log l WHERE l.customer_id = o.user_id) AS logged "
            "FROM orders o WHERE o.execution_arn IS NOT NULL GROUP BY o.user_id"
        )
        rows = cursor.fetchall()
    database.close()
    return {row["user_id"]: (int(row["orders"]), int(row["items"]), int(row["logged"])) for row in rows}


def echo_server() -> tuple[grpc.Server, int]:
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, _context: request)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


class NecessaryIO:
    """CreateOrder's necessary I/O and nothing else: the order, its line and its saga_log entry in
    one transaction (a PyMySQL connection per server thread, as the edge keeps), then one signed
    StartExecution by a boto3 client configured as the edge's. No check, no pricing, no pre-check."""

    def __init__(self, settings: Settings, saga_arn: str) -> None:
        self._settings = settings
        self._saga_arn = saga_arn
        self._stepfunctions = boto3.client("stepfunctions", config=STEP_FUNCTIONS_CONFIG)
        self._local = threading.local()

    def _connection(self) -> "pymysql.connections.Connection[Any]":
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = pymysql.connect(
                host=self._settings.mysql_host,
                port=self._settings.mysql_port,
                user=self._settings.mysql_user,
                password=self._settings.mysql_password,
                database=self._settings.mysql_database,
                charset="utf8mb4",
                autocommit=False,
            )
        return connection

    def create_order(
        self, request: pb.CreateOrderRequest, _context: grpc.ServicerContext
    ) -> pb.CreateOrderResponse:
        order_id = str(uuid.uuid4())
        execution_arn = execution_arn_for(self._saga_arn, order_id)
        connection = self._connection()
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency, "
                "email, payment_token, status, execution_arn) "
                "VALUES (%s, %s, %s, %s, '1.00', 'EUR', %s, %s, 'PENDING', %s)",
                (order_id, BASELINE_CUSTOMER, request.idempotency_key, "0" * 64, request.email,
                 request.payment_token, execution_arn),
            )  # fmt: skip
            cursor.execute(
                "INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                "VALUES (%s, %s, %s, '1.00')",
                (order_id, request.items[0].product_id, request.items[0].quantity),
            )
            cursor.execute(
                "INSERT INTO saga_log (saga_id, step, status, customer_id, client_id) "
                "VALUES (%s, 'CreateOrder', 'PENDING', %s, 'bench')",
                (order_id, BASELINE_CUSTOMER),
            )
        connection.commit()
        self._stepfunctions.start_execution(
            stateMachineArn=self._saga_arn, name=order_id, input=json.dumps({"order_id": order_id})
        )
        return pb.CreateOrderResponse(order=pb.Order(order_id=order_id, status=pb.ORDER_STATUS_PENDING))


def necessary_io_server(edge_settings: EdgeSettings) -> tuple[grpc.Server, int]:
    """The baseline on a server built as the edge's (thread pool, options, TLS), without its chain."""
    server = grpc_server(edge_settings, interceptors=[])
    behaviour = NecessaryIO(edge_settings, edge_settings.order_saga_state_machine_arn).create_order
    handler = grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=pb.CreateOrderRequest.FromString,
        response_serializer=pb.CreateOrderResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"CreateOrder": handler}),)
    )
    port = bind(server, edge_settings, "127.0.0.1:0")
    server.start()
    return server, port


def echo_callers(
    port: int, sample: bytes, metadata: tuple[tuple[str, str]]
) -> Callable[[], Callable[[], object]]:
    """Makes one echo caller per client (its own channel), sending `sample` as CreateOrder would."""

    def make_call() -> Callable[[], object]:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = grpc.insecure_channel(
            f"127.0.0.1:{port}"
        ).unary_unary(ECHO_METHOD)
        return lambda: call(sample, metadata=metadata)

    return make_call


def print_comparison(clients: int, seconds: float, create: Result, *baselines: Result) -> None:
    """The targets as a Markdown table, and CreateOrder's ratios to each baseline."""
    print(f"clients: {clients}, seconds per target: {seconds}, CPUs: {os.cpu_count()}")
    print("| target | calls/s | p50 ms | p99 ms | CPU ms per call (this process) | calls |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for result in (*baselines, create):
        print(result.row())
    for baseline in baselines:
        print(
            f"CreateOrder / {baseline.name}: throughput {create.throughput / baseline.throughput:.3f}, "
            f"p99 {create.percentile(99) / baseline.percentile(99):.2f}x"
        )


def creators(port: int, metadata: tuple[tuple[str, str]]) -> Callable[[], Callable[[], object]]:
    """Makes one CreateOrder caller per client (its own channel), each call a new order."""

    def make_call() -> Callable[[], object]:
        stub = orders_pb2_grpc.OrderServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        return lambda: stub.CreateOrder(order_request(), metadata=metadata, timeout=30)

    return make_call


def step_functions_endpoint() -> "subprocess.Popen[str]":
    """The minimal StartExecution endpoint, in its own process; AWS_ENDPOINT_URL_SFN points at it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.stepfunctions_endpoint"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None  # a pipe, by construction
    os.environ["AWS_ENDPOINT_URL_SFN"] = process.stdout.readline().strip()
    return process


def measure(*, clients: int = 8, seconds: float = 10.0, rounds: int = 2) -> list[Figure]:
    with serving_issuer(KeyRing(STATE_DIR / "bench-issuer")) as issuer:
        return measure_with(issuer, clients=clients, seconds=seconds, rounds=rounds)


def measure_with(issuer: LocalIssuer, *, clients: int, seconds: float, rounds: int) -> list[Figure]:
    logging.disable(logging.INFO)  # one access-log line per call would measure the terminal
    services.services_up()
    load_env()
    settings = prepare_database(Settings())
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    endpoint = step_functions_endpoint()
    metadata = (("authorization", f"Bearer {issuer.customer_token('bench', ('orders:write',))}"),)
    edge_settings = EdgeSettings(
        **settings.model_dump()
        | {
            "order_saga_state_machine_arn": SAGA_ARN,
            "order_cancellation_state_machine_arn": SAGA_ARN,
            "jwt_issuer": issuer.url,
            "jwt_jwks_url": issuer.jwks_url,
            "rate_limit_per_minute": 0,
            "rate_limit_per_client_per_minute": 0,
        }
    )
    cache = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    edge, edge_port = create_server(
        edge_settings,
        orders=build_order_service(edge_settings, cache),
        cache=cache,
        verifier=build_verifier(edge_settings),
        registry=CollectorRegistry(),
        address="127.0.0.1:0",
    )
    edge.start()
    echo, echo_port = echo_server()
    echo_caller = echo_callers(echo_port, order_request().SerializeToString(), metadata)
    baseline, baseline_port = necessary_io_server(edge_settings)
    baseline_name, create_name = "necessary I/O baseline", "CreateOrder (StartExecution: endpoint)"
    try:
        echo_result = load("bare grpcio unary echo", clients, seconds, echo_caller)
        # Alternating rounds: a change of the machine's load falls on both.
        pairs = [
            (load(baseline_name, clients, seconds / rounds, creators(baseline_port, metadata)),
             load(create_name, clients, seconds / rounds, creators(edge_port, metadata)))
            for _ in range(rounds)
        ]  # fmt: skip
    finally:
        for server in (edge, echo, baseline):
            server.stop(None)
        endpoint.terminate()
        started = int(endpoint.communicate()[0].split()[-1])  # its last word: "started <n>"
    baseline_result = sum((pair[0] for pair in pairs[1:]), pairs[0][0])
    create_result = sum((pair[1] for pair in pairs[1:]), pairs[0][1])
    print_comparison(clients, seconds, create_result, echo_result, baseline_result)
    stored = stored_orders(settings)
    print(f"stored (orders, lines, saga_log entries; warm-up included): {stored}; started: {started}")
    # One line per order: every order has its line and its log entry, and each its execution.
    if any(len(set(counts)) != 1 for counts in stored.values()) or started != sum(
        orders for orders, _, _ in stored.values()
    ):
        raise SystemExit("the targets did not store and start what they answered: figures not valid")
    return [
        Figure(f"CreateOrder ÷ necessary-I/O baseline, {clients} clients (calls/s)", create_result.throughput,
               baseline_result.throughput, "calls/s", ">= 0.7"),
        Figure(f"CreateOrder p99 ÷ baseline p99, {clients} clients", create_result.percentile(99),
               baseline_result.percentile(99), "ms", "<= 2", higher_is_better=False),
        Figure(f"CreateOrder ÷ bare grpcio echo, {clients} clients (calls/s)", create_result.throughput,
               echo_result.throughput, "calls/s", "(reported)"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per target")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of baseline and CreateOrder"
    )
    args = parser.parse_args()
    print_table(measure(clients=args.clients, seconds=args.seconds, rounds=args.rounds))


if __name__ == "__main__":
    main()
