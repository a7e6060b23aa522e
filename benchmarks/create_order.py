"""CreateOrder throughput and latency, against a bare grpcio echo server measured in the same run.

    .venv/bin/python benchmarks/create_order.py --clients 8 --seconds 10

The edge runs in this process with its whole chain (JWT check, metrics, access log, rate-limit
stage switched off, MySQL insert of the order, its execution ARN, its line and its saga_log entry
in one transaction, Redis pre-check) over the project's private MariaDB and Redis; StartExecution
is signed by botocore as always and answered by devstack.stepfunctions_endpoint, a minimal
endpoint in its own process, so the figure is the edge's own work and not moto's. The echo server
answers the same bytes with no work at all: the ratio shows what the edge costs over the
transport itself on this machine. Clients are threads of this process, one channel each.
"""

import argparse
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

import grpc
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
from grpc_edge.server import build_order_service, build_verifier, create_server
from grpc_edge.settings import EdgeSettings
from order_saga.db import Database
from order_saga.settings import Settings

DATABASE = "orders_bench"
SAGA_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:OrderSaga"
ECHO_METHOD = "/bench.Echo/Echo"


@dataclass(frozen=True)
class Result:
    name: str
    calls: int
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds

    def percentile(self, p: float) -> float:
        return statistics.quantiles(self.latencies, n=1000)[int(p * 10) - 1] * 1000

    def row(self) -> str:
        return (
            f"| {self.name} | {self.throughput:,.0f} | {self.percentile(50):.2f} | "
            f"{self.percentile(99):.2f} | {self.calls:,} |"
        )


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
    began = time.monotonic()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    merged = [value for per_client in latencies for value in per_client]
    return Result(name, len(merged), elapsed, merged)


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


def stored_orders(settings: Settings) -> int:
    database = Database(settings)
    with database.transaction() as cursor:
        cursor.execute("SELECT COUNT(*) AS n FROM orders WHERE execution_arn IS NOT NULL")
        row = cursor.fetchone()
    database.close()
    return int(row["n"]) if row else 0


def echo_server() -> tuple[grpc.Server, int]:
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, _context: request)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
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


def print_comparison(clients: int, seconds: float, echo: Result, create: Result) -> None:
    """The two targets as a Markdown table, and CreateOrder's throughput as a ratio of the echo's."""
    print(f"clients: {clients}, seconds per target: {seconds}, CPUs: {os.cpu_count()}")
    print("| target | calls/s | p50 ms | p99 ms | calls |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(echo.row())
    print(create.row())
    print(f"CreateOrder throughput / echo throughput: {create.throughput / echo.throughput:.3f}")


def step_functions_endpoint() -> "subprocess.Popen[str]":
    """The minimal StartExecution endpoint, in its own process; AWS_ENDPOINT_URL_SFN points at it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.stepfunctions_endpoint"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None  # a pipe, by construction
    os.environ["AWS_ENDPOINT_URL_SFN"] = process.stdout.readline().strip()
    return process


def measure(*, clients: int = 8, seconds: float = 10.0) -> list[Figure]:
    with serving_issuer(KeyRing(STATE_DIR / "bench-issuer")) as issuer:
        return measure_with(issuer, clients=clients, seconds=seconds)


def measure_with(issuer: LocalIssuer, *, clients: int, seconds: float) -> list[Figure]:
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

    def create_caller() -> Callable[[], object]:
        stub = orders_pb2_grpc.OrderServiceStub(grpc.insecure_channel(f"127.0.0.1:{edge_port}"))

        def call() -> object:
            return stub.CreateOrder(order_request(), metadata=metadata, timeout=30)

        return call

    try:
        echo_result = load("bare grpcio unary echo", clients, seconds, echo_caller)
        create_result = load("CreateOrder (StartExecution: endpoint)", clients, seconds, create_caller)
    finally:
        edge.stop(None)
        echo.stop(None)
        endpoint.terminate()
        endpoint.wait()
    print_comparison(clients, seconds, echo_result, create_result)
    print(f"orders stored: {stored_orders(settings)} (warm-up included)")
    return [
        Figure(f"CreateOrder through the edge, {clients} clients (calls/s)", create_result.throughput,
               echo_result.throughput, "calls/s", ">= 0.5"),
        Figure(f"CreateOrder p99, {clients} clients", create_result.percentile(99),
               echo_result.percentile(99), "ms", "<= 3", higher_is_better=False),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per target")
    args = parser.parse_args()
    print_table(measure(clients=args.clients, seconds=args.seconds))


if __name__ == "__main__":
    main()
