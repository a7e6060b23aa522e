"""ReserveStock throughput on one hot product, against a raw conditional UPDATE loop.

Both run in the same process against the same private MariaDB, with N concurrent workers each on
its own connection (as concurrent Lambda invocations are). The baseline is the bare minimum any
correct reservation needs: one `UPDATE … WHERE stock - reserved >= 1` and a commit. ReserveStock
adds what makes it a saga step: the order row lock, the idempotency check, the reservation row,
the saga_log row and the cache write-through.

    .venv/bin/python benchmarks/reserve_stock.py --workers 8 --orders 2000
"""

import argparse
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pymysql
import redis

from devstack import services
from devstack.envfile import load_env
from order_saga.cache import create_redis
from order_saga.db import Database
from order_saga.migrate import apply_migrations
from order_saga.settings import Settings
from order_saga.steps.inventory import reserve_stock

BENCH_DATABASE = "orders_bench"
PRODUCT = "hot-sku"


def prepare(settings: Settings, orders: int) -> list[str]:
    admin = pymysql.connect(
        host=settings.mysql_host, port=settings.mysql_port, user=settings.mysql_user,
        password=settings.mysql_password, autocommit=True,
    )  # fmt: skip
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}")
        cursor.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    admin.close()
    apply_migrations(Database(settings).credentials)
    order_ids = [str(uuid.uuid4()) for _ in range(orders)]
    db = Database(settings)
    with db.transaction() as cursor:
        cursor.execute(
            "INSERT INTO inventory (product_id, stock, unit_price, currency) VALUES (%s, %s, 1, 'EUR')",
            (PRODUCT, 10 * orders),
        )
        cursor.executemany(
            "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency,"
            " payment_token) VALUES (%s, 'bench', %s, '', 1, 'EUR', 'tok_visa')",
            [(order_id, order_id) for order_id in order_ids],
        )
        cursor.executemany(
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price) VALUES (%s, %s, 1, 1)",
            [(order_id, PRODUCT) for order_id in order_ids],
        )
    db.close()
    return order_ids


def run(workers: int, jobs: list[str], work: Callable[[Database, str], None], settings: Settings) -> float:
    """Operations per second of `work` over `jobs`, spread over `workers` threads."""
    connections = [Database(settings) for _ in range(workers)]
    for db in connections:
        db.connection()  # connect before the clock starts
    chunks = [jobs[i::workers] for i in range(workers)]

    def worker(index: int) -> None:
        for job in chunks[index]:
            work(connections[index], job)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(worker, range(workers)))
    elapsed = time.perf_counter() - started
    for db in connections:
        db.close()
    return len(jobs) / elapsed


def raw_update(db: Database, _job: str) -> None:
    with db.transaction() as cursor:
        cursor.execute(
            "UPDATE inventory SET reserved = reserved + 1 WHERE product_id = %s AND stock - reserved >= 1",
            (PRODUCT,),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--orders", type=int, default=2000)
    args = parser.parse_args()
    services.services_up()
    load_env()
    settings = Settings().model_copy(update={"mysql_database": BENCH_DATABASE})
    order_ids = prepare(settings, args.orders)
    cache: redis.Redis = create_redis(settings)

    baseline = run(args.workers, order_ids, raw_update, settings)
    with Database(settings).transaction() as cursor:
        cursor.execute("UPDATE inventory SET reserved = 0")

    def saga_step(db: Database, order_id: str) -> None:
        reserve_stock(db, cache, order_id)

    saga = run(args.workers, order_ids, saga_step, settings)

    with Database(settings).transaction() as cursor:
        cursor.execute("SELECT stock, reserved FROM inventory WHERE product_id = %s", (PRODUCT,))
        row = cursor.fetchone()
    if row is None or row["reserved"] != args.orders:
        raise SystemExit(f"wrong stock after the run: {row}")
    print(f"workers={args.workers} orders={args.orders} (one hot product, MariaDB on 127.0.0.1)")
    print(f"raw conditional UPDATE + COMMIT : {baseline:8.0f} ops/s")
    print(f"ReserveStock (saga step)        : {saga:8.0f} ops/s")
    print(f"ratio ReserveStock / raw        : {saga / baseline:8.2f}")


if __name__ == "__main__":
    main()
