"""A soak: mixed traffic at the local stack's capacity for a while, and what the edge holds after.

    .venv/bin/python benchmarks/soak.py --minutes 5 --clients 6

Talks to the running stack that `order-saga up` starts (and starts it when it is not up). Each
client loops over a mix like a shop's: CreateOrder (good cards mostly, some declined), GetOrder,
ListOrders, a WatchOrder followed to its end, and a CancelOrder now and then. "At capacity" means
as fast as the clients get answers: each waits for one call before the next, so the stack sets
the pace. Before and after (and after the sagas in flight drained), it reads the edge process's
resident memory, threads and open files from /proc, and the MySQL connections from the server;
then prints the change. A figure that keeps growing with the run's length is a leak.
"""

import argparse
import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc

from devstack.envfile import read_env
from devstack.issuer.process import local_issuer
from devstack.stack import edge_server, stack_up
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from order_saga.cache import create_redis
from order_saga.catalog import set_product
from order_saga.db import Database
from order_saga.settings import Settings

PRODUCTS = ("soak-a", "soak-b")
DRAIN_SECONDS = 600


@dataclass(frozen=True)
class Footprint:
    rss_mb: float
    threads: int
    open_files: int
    mysql_connections: int

    def row(self) -> list[str]:
        return [f"{self.rss_mb:.1f}", str(self.threads), str(self.open_files), str(self.mysql_connections)]


def footprint(pid: int, database: Database) -> Footprint:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    with database.transaction() as cursor:
        cursor.execute("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST")
        row = cursor.fetchone()
    return Footprint(
        rss_mb=int(status["VmRSS"].split()[0]) / 1024,
        threads=int(status["Threads"]),
        open_files=len(os.listdir(f"/proc/{pid}/fd")),
        mysql_connections=int(row["n"]) if row else 0,
    )


def in_flight(database: Database) -> int:
    with database.transaction() as cursor:
        cursor.execute("SELECT COUNT(*) AS n FROM orders WHERE status IN ('PENDING', 'CANCELLING')")
        row = cursor.fetchone()
    return int(row["n"]) if row else 0


class Shopper:
    """One client of the mix: one user, one channel, a call at a time."""

    def __init__(self, address: str, user: str, seed: int, codes: Counter[str], lock: threading.Lock) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a traffic mix, not cryptography
        self.channel = grpc.insecure_channel(address)
        self.stub = orders_pb2_grpc.OrderServiceStub(self.channel)
        self.metadata = (
            ("authorization", f"Bearer {local_issuer().customer_token(user, ttl_seconds=7200)}"),
        )
        self.user, self.codes, self.lock = user, codes, lock
        self.mine: list[str] = []

    def run(self, until: float) -> None:
        while time.monotonic() < until:
            self.step(self.rng.random())
        self.channel.close()

    def step(self, draw: float) -> None:
        if draw < 0.35 or not self.mine:
            self.create()
        elif draw < 0.6:
            self.call("GetOrder", self.stub.GetOrder, pb.GetOrderRequest(order_id=self.rng.choice(self.mine)))
        elif draw < 0.8:
            self.call("ListOrders", self.stub.ListOrders, pb.ListOrdersRequest(page_size=20))
        elif draw < 0.95:
            self.call("WatchOrder", self.watch, pb.WatchOrderRequest(order_id=self.mine[-1]))
        else:
            request = pb.CancelOrderRequest(order_id=self.rng.choice(self.mine), reason="soak")
            self.call("CancelOrder", self.stub.CancelOrder, request)

    def create(self) -> None:
        request = pb.CreateOrderRequest(
            idempotency_key=str(uuid.uuid4()),
            items=[pb.OrderItem(product_id=self.rng.choice(PRODUCTS), quantity=self.rng.randint(1, 3))],
            payment_token="tok_chargeDeclined" if self.rng.random() < 0.1 else "tok_visa",
            email=f"{self.user}@example.com",
        )
        created = self.call("CreateOrder", self.stub.CreateOrder, request)
        if isinstance(created, pb.CreateOrderResponse):
            self.mine.append(created.order.order_id)

    def watch(self, request: pb.WatchOrderRequest, **kwargs: Any) -> None:
        """WatchOrder, followed to the order's end."""
        for _ in self.stub.WatchOrder(request, **kwargs):
            pass

    def call(self, name: str, method: Callable[..., Any], request: Any) -> object:
        try:
            answer, code = method(request, metadata=self.metadata, timeout=30), "OK"
        except grpc.RpcError as error:
            answer, code = None, error.code().name
        with self.lock:
            self.codes[f"{name} {code}"] += 1
        return answer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="how long the traffic runs")
    parser.add_argument("--clients", type=int, default=6, help="concurrent clients (threads), one user each")
    args = parser.parse_args()

    logging.disable(logging.INFO)
    stack_up()
    os.environ.update(read_env())
    settings = Settings()
    database = Database(settings)
    for product in PRODUCTS:
        set_product(
            database,
            create_redis(settings),
            product_id=product,
            stock=10**9,
            unit_price=Decimal("2.00"),
            currency="EUR",
        )
    pid = edge_server().pid()
    if pid is None:
        raise SystemExit("the edge is not running")
    address = read_env()["ORDERS_GRPC_ADDRESS"]
    before = footprint(pid, database)
    codes: Counter[str] = Counter()
    lock = threading.Lock()
    until = time.monotonic() + args.minutes * 60
    threads = [
        threading.Thread(target=Shopper(address, f"soak-{n}", n, codes, lock).run, args=(until,))
        for n in range(args.clients)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ran = time.monotonic() - began
    during = footprint(pid, database)
    while in_flight(database) and time.monotonic() - began < ran + DRAIN_SECONDS:
        time.sleep(1)
    after = footprint(pid, database)

    total = sum(codes.values())
    print(f"soak: {args.clients} clients for {ran:.0f}s: {total} calls, {total / ran:.1f} calls/s")
    for key, count in sorted(codes.items()):
        print(f"  {key:<28} {count:>7}")
    headers = ["", "edge RSS (MB)", "edge threads", "edge open files", "MySQL connections"]
    rows = [["before", *before.row()], ["end of traffic", *during.row()], ["drained", *after.row()]]
    change = [
        "change (drained - before)",
        f"{after.rss_mb - before.rss_mb:+.1f}",
        f"{after.threads - before.threads:+d}",
        f"{after.open_files - before.open_files:+d}",
        f"{after.mysql_connections - before.mysql_connections:+d}",
    ]
    widths = [max(len(str(r[i])) for r in [headers, *rows, change]) for i in range(len(headers))]
    for row in [headers, *rows, change]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
