"""ReserveStock on one hot product against a raw conditional UPDATE, and a flash sale.

Both run in the same process against the same private MariaDB, with N concurrent workers each on
its own connection (as concurrent Lambda invocations are). The baseline is the bare minimum any
correct reservation needs: one `UPDATE … WHERE stock - reserved >= 1` and a commit. ReserveStock
adds what makes it a saga step: the order row lock, the idempotency check, the reservation row,
the saga_log row and the cache write-through.

1. Hot product: every order wants one unit of a product with plenty of stock. Baseline and
   ReserveStock run alternately in `--rounds` rounds, so a change in the machine's other load
   touches both; the ratio is of the summed times.
2. Flash sale: `--buyers` concurrent buyers, each order one unit, fewer units than orders. Each
   target gets its own product with the same units. Then the sold orders are confirmed (ConfirmOrder
   takes the units out of the stock) or released (ReleaseStock), half each, with the same
   concurrency: both touch the hot row too. The script exits non-zero if any unit is oversold.

Each line also gives the round trips per operation: the statements the clients sent, from the
server's `Questions` status before and after (statements inside a stored procedure not counted).

    .venv/bin/python benchmarks/reserve_stock.py --workers 8 --orders 2000 --buyers 64 --sale 1280
"""

import argparse
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from figures import Figure, percentile_ms, print_table

from devstack import services
from devstack.envfile import load_env
from devstack.scratch import create_scratch_database
from order_saga.cache import create_redis
from order_saga.db import Database
from order_saga.errors import OutOfStock
from order_saga.settings import Settings
from order_saga.steps.inventory import release_stock, reserve_stock
from order_saga.steps.orders import confirm_order

BENCH_DATABASE = "orders_bench"
HOT, RAW = "hot-sku", "raw-sku"
Work = Callable[[Database, str], bool]  # True when the unit was taken


@dataclass(frozen=True)
class Run:
    name: str
    seconds: float
    latencies: list[float]
    taken: int
    statements: int  # sent by the clients (the server's `Questions`: a procedure's own are not counted)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def round_trips(self) -> float:
        return self.statements / len(self.latencies)

    def line(self) -> str:
        return (
            f"{self.name:<34}: {self.throughput:8.0f} ops/s"
            f"  p50 {percentile_ms(self.latencies, 50):7.2f} ms"
            f"  p99 {percentile_ms(self.latencies, 99):7.2f} ms"
            f"  {self.round_trips:4.1f} round trips"
            f"  ({self.taken} of {len(self.latencies)} took a unit)"
        )


def questions(db: Database) -> int:
    """The server's count of statements its clients sent (this one included)."""
    with db.transaction() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
        row = cursor.fetchone()
    assert row is not None
    return int(row["Value"])


def add_product(settings: Settings, product_id: str, stock: int) -> None:
    with Database(settings).transaction() as cursor:
        cursor.execute(
            "INSERT INTO inventory (product_id, stock, unit_price, currency) VALUES (%s, %s, 1, 'EUR')"
            " ON DUPLICATE KEY UPDATE stock = VALUES(stock), reserved = 0",
            (product_id, stock),
        )


def add_orders(settings: Settings, count: int) -> list[str]:
    """`count` paid orders of one unit of the hot product (ConfirmOrder needs the payment)."""
    order_ids = [str(uuid.uuid4()) for _ in range(count)]
    with Database(settings).transaction() as cursor:
        cursor.executemany(
            "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency,"
            " payment_token) VALUES (%s, 'bench', %s, '', 1, 'EUR', 'tok_visa')",
            [(order_id, order_id) for order_id in order_ids],
        )
        cursor.executemany(
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES (%s, %s, 1, 1)",
            [(order_id, HOT) for order_id in order_ids],
        )
        cursor.executemany(
            "INSERT INTO payments (payment_id, order_id, amount, currency, status)"
            " VALUES (%s, %s, 1, 'EUR', 'SUCCESS')",
            [(str(uuid.uuid4()), order_id) for order_id in order_ids],
        )
    return order_ids


def run(name: str, workers: int, jobs: list[str], work: Work, settings: Settings) -> Run:
    """`work` over `jobs`, spread over `workers` threads each with its own connection."""
    connections = [Database(settings) for _ in range(workers)]
    for db in connections:
        db.connection()  # connect before the clock starts
    chunks = [jobs[i::workers] for i in range(workers)]
    latencies: list[list[float]] = [[] for _ in range(workers)]
    taken = [0] * workers

    def worker(index: int) -> None:
        for job in chunks[index]:
            began = time.perf_counter()
            taken[index] += work(connections[index], job)
            latencies[index].append(time.perf_counter() - began)

    before = questions(connections[0])
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(worker, range(workers)))
    elapsed = time.perf_counter() - started
    # Less the second reading and its commit: the server counts every statement of every client,
    # and on this private server the benchmark is the only one.
    statements = questions(connections[0]) - before - 2
    for db in connections:
        db.close()
    return Run(name, elapsed, [value for chunk in latencies for value in chunk], sum(taken), statements)


def raw_update(product_id: str) -> Work:
    def work(db: Database, _job: str) -> bool:
        with db.transaction() as cursor:
            cursor.execute(
                "UPDATE inventory SET reserved = reserved + 1"
                " WHERE product_id = %s AND stock - reserved >= 1",
                (product_id,),
            )
            return bool(cursor.rowcount)

    return work


def raw_take_out(db: Database, _job: str) -> bool:
    """The baseline of ConfirmOrder and ReleaseStock: one UPDATE of the hot row and a commit."""
    with db.transaction() as cursor:
        cursor.execute(
            "UPDATE inventory SET stock = stock - 1, reserved = reserved - 1 WHERE product_id = %s", (RAW,)
        )
        return bool(cursor.rowcount)


def steps(cache: "redis.Redis") -> dict[str, Work]:
    def reserve(db: Database, order_id: str) -> bool:
        try:
            reserve_stock(db, cache, order_id)
        except OutOfStock:
            return False
        return True

    def confirm(db: Database, order_id: str) -> bool:
        confirm_order(db, cache, order_id)
        return True

    def release(db: Database, order_id: str) -> bool:
        release_stock(db, cache, order_id)
        return True

    return {"ReserveStock": reserve, "ConfirmOrder": confirm, "ReleaseStock": release}


def stock_of(settings: Settings, product_id: str) -> tuple[int, int]:
    with Database(settings).transaction() as cursor:
        cursor.execute("SELECT stock, reserved FROM inventory WHERE product_id = %s", (product_id,))
        row = cursor.fetchone()
    assert row is not None  # added by this script
    return int(row["stock"]), int(row["reserved"])


def hot_product(settings: Settings, cache: "redis.Redis", workers: int, orders: int, rounds: int) -> Figure:
    add_product(settings, HOT, 10 * orders)
    add_product(settings, RAW, 10 * orders)
    raw_seconds = saga_seconds = 0.0
    raw_statements = saga_statements = 0
    per_round = orders // rounds
    for _ in range(rounds):
        raw = run("raw", workers, ["raw"] * per_round, raw_update(RAW), settings)
        jobs = add_orders(settings, per_round)
        saga = run("ReserveStock", workers, jobs, steps(cache)["ReserveStock"], settings)
        raw_seconds, raw_statements = raw_seconds + raw.seconds, raw_statements + raw.statements
        saga_seconds, saga_statements = saga_seconds + saga.seconds, saga_statements + saga.statements
    if stock_of(settings, HOT)[1] != per_round * rounds:
        raise SystemExit(f"wrong stock after the hot-product run: {stock_of(settings, HOT)}")
    done = per_round * rounds
    print(f"hot product: workers={workers} orders={done} in {rounds} alternating rounds")
    print(f"raw conditional UPDATE + COMMIT   : {done / raw_seconds:8.0f} ops/s")
    print(f"ReserveStock (saga step)          : {done / saga_seconds:8.0f} ops/s")
    print(f"ratio ReserveStock / raw          : {raw_seconds / saga_seconds:8.2f}")
    print(f"round trips per op, raw / saga    : {raw_statements / done:8.1f} / {saga_statements / done:.1f}")
    return Figure(f"ReserveStock, one hot product, {workers} workers", done / saga_seconds,
                  done / raw_seconds, "ops/s", ">= 0.7")  # fmt: skip


def flash_sale(settings: Settings, cache: "redis.Redis", buyers: int, sale: int) -> list[Figure]:
    units = sale // 2
    add_product(settings, HOT, units)
    add_product(settings, RAW, units)
    order_ids = add_orders(settings, sale)
    work = steps(cache)
    raw = run("raw conditional UPDATE + COMMIT", buyers, ["raw"] * sale, raw_update(RAW), settings)
    saga = run("ReserveStock", buyers, order_ids, work["ReserveStock"], settings)
    oversold = max(0, stock_of(settings, HOT)[1] - units) + max(0, stock_of(settings, RAW)[1] - units)
    print(f"flash sale: {buyers} buyers, {sale} orders of one unit, {units} units")
    for result in (raw, saga):
        print(result.line())
    print(f"oversold: {oversold}")
    if oversold or saga.taken != units or raw.taken != units:
        raise SystemExit(f"wrong sale: oversold {oversold}, sold {saga.taken} and {raw.taken} of {units}")
    with Database(settings).transaction() as cursor:
        cursor.execute(
            "SELECT order_id FROM inventory_reservations WHERE status = 'RESERVED' AND order_id IN %s",
            (order_ids,),
        )
        sold = [row["order_id"] for row in cursor.fetchall()]
    half = len(sold) // 2
    raw_out = run("raw UPDATE of stock + COMMIT", buyers, ["raw"] * half, raw_take_out, settings)
    confirm = run("ConfirmOrder", buyers, sold[:half], work["ConfirmOrder"], settings)
    release = run("ReleaseStock", buyers, sold[half:], work["ReleaseStock"], settings)
    for result in (raw_out, confirm, release):
        print(result.line())
    stock, reserved = stock_of(settings, HOT)
    if (stock, reserved) != (units - half, units - half - len(sold[half:])):
        raise SystemExit(f"wrong stock after confirming and releasing: {(stock, reserved)}")
    return [
        Figure(f"flash sale ReserveStock, {buyers} buyers, {sale} orders for {units} units, oversold 0",
               saga.throughput, raw.throughput, "ops/s", ">= 0.7"),
        Figure("flash sale ReserveStock p99 (baseline: raw UPDATE p99)", percentile_ms(saga.latencies, 99),
               percentile_ms(raw.latencies, 99), "ms", "(reported)", higher_is_better=False),
        Figure(f"flash sale ConfirmOrder, {buyers} buyers", confirm.throughput, raw_out.throughput, "ops/s",
               "(reported)"),
        Figure(f"flash sale ReleaseStock, {buyers} buyers", release.throughput, raw_out.throughput, "ops/s",
               "(reported)"),
    ]  # fmt: skip


def measure(
    *, workers: int = 8, orders: int = 2000, rounds: int = 4, buyers: int = 64, sale: int = 1280
) -> list[Figure]:
    services.services_up()
    load_env()
    settings = create_scratch_database(Settings(), BENCH_DATABASE)
    cache: redis.Redis = create_redis(settings)
    return [hot_product(settings, cache, workers, orders, rounds), *flash_sale(settings, cache, buyers, sale)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--buyers", type=int, default=64)
    parser.add_argument("--sale", type=int, default=1280, help="orders in the flash sale (units: half)")
    args = parser.parse_args()
    print_table(measure(workers=args.workers, orders=args.orders, rounds=args.rounds, buyers=args.buyers,
                        sale=args.sale))  # fmt: skip


if __name__ == "__main__":
    main()
