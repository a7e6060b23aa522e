"""A burst of orders on the full local stack, followed all the way to CONFIRMED.

    .venv/bin/python benchmarks/full_stack.py --clients 8 --orders 120

This talks to the running stack that `order-saga up` starts (and starts it when it is not up): the
edge process, and moto executing every saga through the local Lambda invoker. After `--warmup`
unmeasured orders (16: they start the Lambda workers), `--clients` threads create `--orders`
orders as fast as the edge answers, and the run waits until no saga is in flight. It prints
orders/s (orders over the time from the first CreateOrder to the last saga's end), CreateOrder's
latency, each order's create-to-confirmed latency, the outcomes, and, sampled every half second
while it runs, the machine's load average and the number of Lambda worker processes of this
stack. Then, per step, from the REPORT lines the invoker's workers wrote during the burst
(devstack/lambda_reports.py): invocations, the warm duration's p50 and p99 (the handler's own
time, Lambda's "Duration"), the cold starts with their init duration, and the largest "Max Memory
Used". `--seconds N` first runs N seconds of closed-loop CreateOrder load beside a bare grpcio
echo server, as in benchmarks/create_order.py.
"""

import argparse
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import grpc
from create_order import echo_callers, echo_server, load, print_comparison
from figures import Figure, percentile_ms, print_table

from devstack.envfile import read_env
from devstack.invoker import LOG_DIR
from devstack.issuer.process import local_issuer
from devstack.lambda_reports import Report, log_ends, reports_since
from devstack.paths import REPO_ROOT, STATE_DIR
from devstack.stack import stack_up
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from order_saga.cache import create_redis
from order_saga.catalog import set_product
from order_saga.db import Database
from order_saga.settings import Settings

PRODUCT = "bench-item"
DRAIN_SECONDS = 600
# Orders first, unmeasured, to start the workers a burst keeps warm (their cold starts are CPU
# the measured burst would otherwise share); the measured burst still reports any of its own.
WARMUP = 16
FIRST_MEASURED = 9.0  # orders/s to CONFIRMED on 2026-11-24, before the stack was tuned (docs/performance.md)
Metadata = tuple[tuple[str, str]]


def new_order() -> pb.CreateOrderRequest:
    return pb.CreateOrderRequest(
        idempotency_key=str(uuid.uuid4()),
        items=[pb.OrderItem(product_id=PRODUCT, quantity=1)],
        payment_token="tok_visa",  # noqa: S106 -- the gateway server's test card
        email="bench@example.com",
    )


def pending(database: Database, order_ids: list[str]) -> int:
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT COUNT(*) AS n FROM orders WHERE status IN ('PENDING', 'CANCELLING') AND order_id IN %s",
            (order_ids,),
        )
        row = cursor.fetchone()
    return int(row["n"]) if row else 0


def drain(database: Database, order_ids: list[str]) -> float:
    """Wait until the sagas of these orders have ended; the seconds it took."""
    began = time.monotonic()
    while pending(database, order_ids) and time.monotonic() - began < DRAIN_SECONDS:
        time.sleep(0.2)
    if pending(database, order_ids):
        raise SystemExit(f"sagas still in flight after {DRAIN_SECONDS}s")
    return time.monotonic() - began


@dataclass
class Burst:
    seconds: float = 0.0
    create_latencies: list[float] = field(default_factory=list)
    confirm_latencies: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    max_load: float = 0.0
    max_workers: int = 0
    reports: dict[str, list[Report]] = field(default_factory=dict)  # by step

    @property
    def rate(self) -> float:
        return sum(self.outcomes.values()) / self.seconds

    def print(self, orders: int, clients: int) -> None:
        print(f"burst: {orders} orders from {clients} clients, {os.cpu_count()} CPUs")
        print(f"  all sagas ended after {self.seconds:.1f}s: {self.rate:.1f} orders/s")
        print(f"  outcomes {self.outcomes}")
        create, confirm = self.create_latencies, self.confirm_latencies
        print(f"  CreateOrder p50 {percentile_ms(create, 50):.0f} ms, p99 {percentile_ms(create, 99):.0f} ms")
        print(
            f"  create-to-confirmed p50 {percentile_ms(confirm, 50) / 1000:.2f}s,"
            f" p99 {percentile_ms(confirm, 99) / 1000:.2f}s"
        )
        print(f"  at most {self.max_workers} Lambda workers; load average (1 min) up to {self.max_load:.1f}")
        print_steps(self.reports)


def print_steps(reports: dict[str, list[Report]]) -> None:
    """Per step, what Lambda's REPORT lines say: durations, cold starts, peak memory."""
    print("| step | invocations | warm p50 | warm p99 | cold starts (init p50) | max memory used |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for step, step_reports in sorted(reports.items()):
        warm = [r.duration_ms / 1000 for r in step_reports if r.init_duration_ms is None and not r.status]
        inits = [r.init_duration_ms / 1000 for r in step_reports if r.init_duration_ms is not None]
        cold = f"{len(inits)} ({percentile_ms(inits, 50):.0f} ms)" if inits else "0"
        used = max(r.max_memory_used_mb for r in step_reports)
        p50, p99 = percentile_ms(warm, 50), percentile_ms(warm, 99)
        print(
            f"| {step} | {len(step_reports)} | {p50:.1f} ms | {p99:.1f} ms | {cold}"
            f" | {used} MB of {step_reports[-1].memory_size_mb} |"
        )


def lambda_workers() -> int:
    """Worker processes of this stack's invoker: their command line names a function folder of
    this checkout ($LATEST) or of one of its stack's published releases."""
    folders = [f"\0{folder}".encode() for folder in (f"{REPO_ROOT}/functions", f"{STATE_DIR}/releases/")]
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue  # the process ended meanwhile
        count += b"\0devstack.lambda_runtime\0" in text and any(folder in text for folder in folders)
    return count


def burst(stub: orders_pb2_grpc.OrderServiceStub, metadata: Metadata, orders: int, clients: int,
          database: Database) -> Burst:  # fmt: skip
    """`orders` orders from `clients` threads at once; wait until every saga has ended."""
    result = Burst()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            result.max_load = max(result.max_load, os.getloadavg()[0])
            result.max_workers = max(result.max_workers, lambda_workers())

    def create(_: int) -> str:
        began = time.perf_counter()
        order_id = stub.CreateOrder(new_order(), metadata=metadata, timeout=120).order.order_id
        result.create_latencies.append(time.perf_counter() - began)
        return str(order_id)

    sampler = threading.Thread(target=sample, daemon=True)
    ends = log_ends(LOG_DIR)
    sampler.start()
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        created = list(pool.map(create, range(orders)))
    drain(database, created)
    result.seconds = time.monotonic() - began
    done.set()
    sampler.join()
    result.reports = reports_since(LOG_DIR, ends)
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT status, TIMESTAMPDIFF(MICROSECOND, created_at, updated_at) / 1e6 AS seconds"
            " FROM orders WHERE order_id IN %s",
            (created,),
        )
        for row in cursor.fetchall():
            result.outcomes[row["status"]] = result.outcomes.get(row["status"], 0) + 1
            if row["status"] == "CONFIRMED":
                result.confirm_latencies.append(float(row["seconds"]))
    return result


def closed_loop(address: str, metadata: Metadata, clients: int, seconds: float) -> None:
    """CreateOrder as fast as the clients go for `seconds`, beside the echo baseline."""
    echo, echo_port = echo_server()
    echo_caller = echo_callers(echo_port, new_order().SerializeToString(), metadata)

    def create_caller() -> Callable[[], object]:
        stub = orders_pb2_grpc.OrderServiceStub(grpc.insecure_channel(address))
        return lambda: stub.CreateOrder(new_order(), metadata=metadata, timeout=120)

    echo_result = load("bare grpcio unary echo", clients, seconds, echo_caller)
    create_result = load("CreateOrder, full local stack", clients, seconds, create_caller)
    echo.stop(None)
    print_comparison(clients, seconds, create_result, echo_result)


def measure(
    *, clients: int = 8, orders: int = 120, seconds: float = 0.0, warmup: int = WARMUP
) -> list[Figure]:
    logging.disable(logging.INFO)
    stack_up()
    os.environ.update(read_env())
    settings = Settings()
    database = Database(settings)
    set_product(database, create_redis(settings), product_id=PRODUCT, stock=10**9,
                unit_price=Decimal("1.00"), currency="EUR")  # fmt: skip
    metadata = (("authorization", f"Bearer {local_issuer().customer_token('bench', ttl_seconds=7200)}"),)
    address = read_env()["ORDERS_GRPC_ADDRESS"]
    if seconds:
        closed_loop(address, metadata, clients, seconds)
    stub = orders_pb2_grpc.OrderServiceStub(grpc.insecure_channel(address))
    if warmup:
        started = burst(stub, metadata, warmup, clients, database)
        cold = sum(
            report.init_duration_ms is not None for step in started.reports.values() for report in step
        )
        print(f"warm-up: {warmup} orders in {started.seconds:.1f}s, {cold} cold starts of Lambda workers")
    result = burst(stub, metadata, orders, clients, database)
    result.print(orders, clients)
    if result.outcomes.get("CONFIRMED") != orders:
        raise SystemExit(f"not every order was confirmed: {result.outcomes}")
    return [
        Figure(f"local full stack, {orders} orders from {clients} clients to CONFIRMED"
               " (baseline: 2026-11-24)", result.rate, FIRST_MEASURED, "orders/s", ">= 3 (27/s)"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--orders", type=int, default=120, help="orders in the burst")
    parser.add_argument("--seconds", type=float, default=0.0, help="seconds of closed-loop load first")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="unmeasured orders first (0: none)")
    args = parser.parse_args()
    print_table(measure(clients=args.clients, orders=args.orders, seconds=args.seconds, warmup=args.warmup))


if __name__ == "__main__":
    main()
