"""ReserveStock, ReleaseStock and committing stock, against MariaDB with the cache in Redis."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from order_saga.db import Database
from order_saga.errors import OrderNotFound, OutOfStock, StepAlreadyCompensated
from order_saga.feeds import availability_key
from order_saga.models import ReservationStatus
from order_saga.settings import Settings
from order_saga.steps.inventory import release_stock, reserve_stock
from tests.support.data import OrderFactory, query


def stock(database: Database, product_id: str) -> tuple[int, int]:
    row = query(database, "SELECT stock, reserved FROM inventory WHERE product_id = %s", product_id)[0]
    return int(row["stock"]), int(row["reserved"])


def reservations(database: Database, order_id: str) -> list[tuple[str, int, str]]:
    rows = query(
        database,
        "SELECT product_id, quantity, status FROM inventory_reservations"
        " WHERE order_id = %s ORDER BY product_id",
        order_id,
    )
    return [(row["product_id"], row["quantity"], row["status"]) for row in rows]


def test_reserving_twice_reserves_once(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory
) -> None:
    order_id = new_order({"sku-1": 3, "sku-2": 1})
    first = reserve_stock(database, redis_client, order_id)
    second = reserve_stock(database, redis_client, order_id)
    assert first == second
    assert stock(database, "sku-1") == (20, 3)
    assert stock(database, "sku-2") == (5, 1)
    assert reservations(database, order_id) == [("sku-1", 3, "RESERVED"), ("sku-2", 1, "RESERVED")]
    # And the cache was written through with what is left
    assert redis_client.get(availability_key("sku-1")) == "17"
    assert redis_client.get(availability_key("sku-2")) == "4"


def test_a_short_line_rolls_back_the_whole_reservation(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory
) -> None:
    # Given an order whose first line is in stock and whose second is not (sku-3 has 1)
    order_id = new_order({"sku-1": 2, "sku-3": 2})
    redis_client.set(availability_key("sku-3"), "99")  # a stale cache entry
    # When ReserveStock runs
    with pytest.raises(OutOfStock, match="sku-3"):
        reserve_stock(database, redis_client, order_id)
    # Then nothing is reserved, not even the first line, nothing is logged, and the cache tells
    # the truth again
    assert stock(database, "sku-1") == (20, 0)
    assert reservations(database, order_id) == []
    assert query(database, "SELECT step FROM saga_log WHERE saga_id = %s", order_id) == []
    assert redis_client.get(availability_key("sku-3")) == "1"


@pytest.mark.parametrize("step", [reserve_stock, release_stock])
def test_an_unknown_order_is_not_found(
    database: Database, redis_client: "redis.Redis", step: Callable[..., object]
) -> None:
    with pytest.raises(OrderNotFound, match="order 00000000-0000-4000-8000-000000000000 does not exist"):
        step(database, redis_client, "00000000-0000-4000-8000-000000000000")


def test_releasing_twice_releases_once(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory
) -> None:
    order_id = new_order({"sku-1": 3})
    reserve_stock(database, redis_client, order_id)
    release_stock(database, redis_client, order_id)
    outcome = release_stock(database, redis_client, order_id)
    assert [r.status for r in outcome.reservations] == [ReservationStatus.RELEASED]
    assert stock(database, "sku-1") == (20, 0)
    steps = query(database, "SELECT step, status FROM saga_log WHERE saga_id = %s ORDER BY id", order_id)
    assert [(s["step"], s["status"]) for s in steps] == [
        ("ReserveStock", "RESERVED"),
        ("ReleaseStock", "RELEASED"),
    ]


def test_a_release_with_nothing_reserved_stops_a_late_reservation(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory
) -> None:
    # Given ReleaseStock ran first (ReserveStock timed out in the state machine)
    order_id = new_order({"sku-1": 3})
    release_stock(database, redis_client, order_id)
    assert reservations(database, order_id) == [("sku-1", 0, "RELEASED")]
    # When the late ReserveStock arrives, then it is rejected and reserves nothing
    with pytest.raises(StepAlreadyCompensated):
        reserve_stock(database, redis_client, order_id)
    assert stock(database, "sku-1") == (20, 0)


def test_fifty_sagas_on_twenty_units_never_oversell(
    settings: Settings, database: Database, redis_client: "redis.Redis", new_order: OrderFactory
) -> None:
    # Given 50 orders of one unit each on a product with 20 in stock
    orders = [new_order({"sku-1": 1}) for _ in range(50)]
    start = threading.Barrier(50, timeout=60)  # a saga that never arrives breaks it, saying so
    oversold = threading.Event()

    def reserve(order_id: str) -> str:
        db = Database(settings)  # each saga has its own connection, as each Lambda does
        start.wait()
        try:
            reserve_stock(db, redis_client, order_id)
            return "reserved"
        except OutOfStock:
            return "out of stock"
        finally:
            if stock(db, "sku-1")[1] > 20:
                oversold.set()
            db.close()

    # When they all reserve at once
    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(reserve, orders))
    # Then exactly 20 succeed, 30 are refused, and stock is exact
    assert outcomes.count("reserved") == 20
    assert outcomes.count("out of stock") == 30
    assert stock(database, "sku-1") == (20, 20)
    assert not oversold.is_set()
    reserved_rows = query(
        database, "SELECT COUNT(*) AS n FROM inventory_reservations WHERE status = 'RESERVED'"
    )
    assert reserved_rows == [{"n": 20}]


def test_a_product_gone_from_the_catalog_reserves_nothing(
    database: Database, redis_client: "redis.Redis", new_order: OrderFactory
) -> None:
    # Given an order of a product the inventory no longer has (no foreign key guards the
    # reservation rows since migration 0004: the conditional UPDATE is the guard)
    order_id = new_order({"sku-1": 1, "sku-2": 1})
    with database.transaction() as cursor:
        cursor.execute(
            "UPDATE order_items SET product_id = 'sku-gone' WHERE order_id = %s AND product_id = 'sku-2'",
            (order_id,),
        )
    # When ReserveStock runs, then it is refused and its reservation rows roll back with it
    with pytest.raises(OutOfStock, match="sku-gone"):
        reserve_stock(database, redis_client, order_id)
    assert reservations(database, order_id) == []
    assert stock(database, "sku-1") == (20, 0)
