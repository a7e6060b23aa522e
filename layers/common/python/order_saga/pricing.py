"""A new order's price and its availability pre-check, before anything is stored: lines at the
catalog's prices (never the client's), and a quick refusal of what is obviously out of stock."""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis

from .db import Database
from .errors import FieldViolation, InvalidRequest, OutOfStock, UnknownProduct
from .feeds import AVAILABILITY_TTL_SECONDS, availability_key
from .models import OrderItem
from .observability import logger
from .order_requests import NewOrder
from .repository import placeholders

MAX_TOTAL = Decimal("99999999.99")  # DECIMAL(10,2)


@dataclass(frozen=True)
class CatalogEntry:
    unit_price: Decimal
    currency: str


@dataclass(frozen=True)
class PricedOrder:
    items: list[OrderItem]
    total: Decimal
    currency: str


class Pricing:
    """Prices and pre-checks new orders. Thread-safe: the remembered prices sit behind a lock, and
    `database` gives each thread its own connection."""

    def __init__(
        self,
        database: Callable[[], Database],
        cache: "redis.Redis",
        *,
        catalog_ttl_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._cache = cache
        self._catalog_ttl = catalog_ttl_seconds
        self._catalog_cache: dict[str, tuple[CatalogEntry, float]] = {}  # product -> (entry, expires)
        self._catalog_lock = threading.Lock()
        self._clock = clock

    def price_and_check(self, request: NewOrder) -> PricedOrder:
        """The order priced from the catalog; UnknownProduct, InvalidRequest (its total, its
        currencies) or OutOfStock when it cannot be taken."""
        priced = price(request, self._catalog([product_id for product_id, _ in request.items]))
        self._precheck_availability(request)
        return priced

    def _catalog(self, product_ids: list[str]) -> dict[str, CatalogEntry]:
        """Prices and currencies, remembered for `catalog_ttl_seconds` (a price change reaches new
        orders within that time); a product not remembered is read from MySQL, the truth, so a
        product just added is never refused."""
        now = self._clock()
        with self._catalog_lock:
            remembered = {product_id: self._catalog_cache.get(product_id) for product_id in product_ids}
        known = {
            product_id: cached[0] for product_id, cached in remembered.items() if cached and cached[1] > now
        }
        missing = [product_id for product_id in product_ids if product_id not in known]
        if missing:
            rows = self._inventory_rows(missing, "unit_price, currency")
            read = {row["product_id"]: CatalogEntry(row["unit_price"], row["currency"]) for row in rows}
            with self._catalog_lock:
                self._catalog_cache.update(
                    (product_id, (entry, now + self._catalog_ttl)) for product_id, entry in read.items()
                )
            known |= read
        unknown = [product_id for product_id in product_ids if product_id not in known]
        if unknown:
            raise UnknownProduct(f"not in the catalog: {', '.join(unknown)}")
        return known

    def _inventory_rows(self, product_ids: list[str], columns: str) -> list[dict[str, Any]]:
        with self._database().transaction() as cursor:
            where = f"product_id IN ({placeholders(product_ids)})"
            cursor.execute(f"SELECT product_id, {columns} FROM inventory WHERE {where}", tuple(product_ids))  # noqa: S608
            return list(cursor.fetchall())

    def _precheck_availability(self, request: NewOrder) -> None:
        """Reject what is obviously out of stock. Redis answers first (the inventory steps write
        through); a miss reads MySQL and caches the figure briefly, without overwriting a fresher
        write-through. ReserveStock's conditional UPDATE stays the guard."""
        product_ids = [product_id for product_id, _ in request.items]
        try:
            cached = self._cache.mget([availability_key(product_id) for product_id in product_ids])
        except redis.RedisError as exc:
            logger.warning("availability cache unreachable; using MySQL", extra={"error": str(exc)})
            cached = [None] * len(product_ids)
        missed = [product_id for product_id, value in zip(product_ids, cached, strict=True) if value is None]
        misses = {
            row["product_id"]: int(row["available"])
            for row in (self._inventory_rows(missed, "stock - reserved AS available") if missed else [])
        }
        short = [
            product_id
            for (product_id, quantity), value in zip(request.items, cached, strict=True)
            if (misses.get(product_id, 0) if value is None else int(value)) < quantity
        ]
        self._cache_availability(misses)
        if short:
            raise OutOfStock(f"not enough units available of: {', '.join(short)}")

    def _cache_availability(self, misses: dict[str, int]) -> None:
        if not misses:
            return
        try:
            with self._cache.pipeline(transaction=False) as pipe:
                for product_id, available in misses.items():
                    pipe.set(availability_key(product_id), available, nx=True, ex=AVAILABILITY_TTL_SECONDS)
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning("availability not cached", extra={"error": str(exc)})


def price(request: NewOrder, catalog: dict[str, CatalogEntry]) -> PricedOrder:
    """The lines at catalog prices (never the client's), their total and their one currency."""
    currencies = sorted({catalog[product_id].currency for product_id, _ in request.items})
    if len(currencies) > 1:
        raise InvalidRequest(
            [FieldViolation("items", f"products priced in different currencies ({', '.join(currencies)})")]
        )
    items = [
        OrderItem(product_id=product_id, quantity=quantity, unit_price=catalog[product_id].unit_price)
        for product_id, quantity in request.items
    ]
    total = sum((item.quantity * catalog[item.product_id].unit_price for item in items), Decimal(0))
    if total > MAX_TOTAL:
        raise InvalidRequest([FieldViolation("items", f"the order's total exceeds {MAX_TOTAL}")])
    return PricedOrder(items, total, currencies[0])
