"""CreateOrder on the full local stack, and orders per second all the way to CONFIRMED.

    .venv/bin/python benchmarks/full_stack.py --clients 8 --seconds 10 --orders 100

Unlike benchmarks/create_order.py (edge in-process, StartExecution recorded but not run), this
talks to the running stack that `order-saga up` starts (and starts it when it is not up): the edge
process on 127.0.0.1:50051 and moto executing every saga through the local Lambda invoker. The
bare grpcio echo server is measured in the same run as the baseline.

1. CreateOrder calls/s and latency with N clients, while the sagas the calls start run beside them.
2. End to end: the clients create `--orders` orders, and the run waits until every one is
   CONFIRMED; orders/s is orders over the time from the first CreateOrder to the last confirmation,
   and the per-order latency is `updated_at - created_at` of the confirmed rows.
"""

import argparse
import logging
import os
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import grpc
from create_order import echo_callers, echo_server, load, print_comparison

from devstack.devtokens import mint_token
from devstack.envfile import read_env
from devstack.stack import stack_up
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from order_saga.cache import create_redis
from order_saga.catalog import set_product
from order_saga.db import Database
from order_saga.settings import Settings

PRODUCT = "bench-item"
DRAIN_SECONDS = 600


def new_order() -> pb.CreateOrderRequest:
    return pb.CreateOrderRequest(
        idempotency_key=str(uuid.uuid4()),
        items=[pb.OrderItem(product_id=PRODUCT, quantity=1)],
        payment_token="tok_visa",  # noqa: S106 -- the simulated gateway's test card
        email="bench@example.com",
    )


def pending(database: Database) -> int:
    with database.transaction() as cursor:
        cursor.execute("SELECT COUNT(*) AS n FROM orders WHERE status IN ('PENDING', 'CANCELLING')")
        row = cursor.fetchone()
    return int(row["n"]) if row else 0


def drain(database: Database) -> float:
    """Wait until no saga is in flight; the seconds it took."""
    began = time.monotonic()
    while pending(database) and time.monotonic() - began < DRAIN_SECONDS:
        time.sleep(0.2)
    if pending(database):
        raise SystemExit(f"sagas still in flight after {DRAIN_SECONDS}s")
    return time.monotonic() - began


def to_confirmed(stub: orders_pb2_grpc.OrderServiceStub, metadata: tuple[tuple[str, str]], orders: int,
                 clients: int, database: Database) -> tuple[float, list[float], int]:  # fmt: skip
    """Create `orders` orders with `clients` threads, wait for all; (orders/s, latencies, confirmed)."""
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        created = list(pool.map(lambda _: stub.CreateOrder(new_order(), metadata=metadata).order.order_id,
                                range(orders)))  # fmt: skip
    drain(database)
    elapsed = time.monotonic() - began
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, updated_at) / 1e6 AS seconds FROM orders"
            " WHERE status = 'CONFIRMED' AND order_id IN %s",
            (created,),
        )
        latencies = [float(row["seconds"]) for row in cursor.fetchall()]
    return orders / elapsed, latencies, len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of CreateOrder load")
    parser.add_argument("--orders", type=int, default=100, help="orders followed to CONFIRMED")
    args = parser.parse_args()

    logging.disable(logging.INFO)
    stack_up()
    os.environ.update(read_env())
    settings = Settings()
    database = Database(settings)
    set_product(
        database,
        create_redis(settings),
        product_id=PRODUCT,
        stock=10**9,
        unit_price=Decimal("1.00"),
        currency="EUR",
    )
    drain(database)
    metadata = (("authorization", f"Bearer {mint_token('bench', ttl_seconds=7200)}"),)
    address = read_env()["ORDERS_GRPC_ADDRESS"]
    echo, echo_port = echo_server()
    echo_caller = echo_callers(echo_port, new_order().SerializeToString(), metadata)

    def create_caller() -> Callable[[], object]:
        stub = orders_pb2_grpc.OrderServiceStub(grpc.insecure_channel(address))
        return lambda: stub.CreateOrder(new_order(), metadata=metadata, timeout=30)

    echo_result = load("bare grpcio unary echo", args.clients, args.seconds, echo_caller)
    create_result = load("CreateOrder, full local stack", args.clients, args.seconds, create_caller)
    echo.stop(None)
    drained = drain(database)

    stub = orders_pb2_grpc.OrderServiceStub(grpc.insecure_channel(address))
    rate, latencies, confirmed = to_confirmed(stub, metadata, args.orders, args.clients, database)

    print_comparison(args.clients, args.seconds, echo_result, create_result)
    print(f"the sagas those calls started finished {drained:.1f}s after the load stopped")
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"end to end: {args.orders} orders, {confirmed} CONFIRMED, {rate:.1f} orders/s to CONFIRMED; "
        f"create-to-confirmed p50 {quantiles[49]:.2f}s, p99 {quantiles[98]:.2f}s"
    )
    if confirmed != args.orders:
        raise SystemExit("not every order was confirmed")


if __name__ == "__main__":
    main()
