"""The edge's operations on orders: create, read, list, cancel, watch, and start orphaned sagas.

Every operation acts for one user (the access token's subject) and sees only that user's orders.
MySQL is the truth; Redis serves the availability pre-check and the status feed; Step Functions
runs each order's saga under the execution name = order_id, which makes a second start of the
same order impossible.
"""

import base64
import binascii
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pymysql
import redis
from botocore.exceptions import BotoCoreError, ClientError

from .db import Cursor, Database
from .errors import (
    CacheUnavailable,
    FieldViolation,
    IdempotencyConflict,
    InvalidRequest,
    InvalidStateTransition,
    OrderNotFound,
    OutOfStock,
    UnknownProduct,
    WorkflowUnavailable,
)
from .feeds import AVAILABILITY_TTL_SECONDS, availability_key, publish_status, status_channel
from .models import (
    MAX_ORDER_LINES,
    MAX_PRODUCT_ID,
    MAX_QUANTITY,
    ORDER_ID_PATTERN,
    PRODUCT_ID_PATTERN,
    Order,
    OrderItem,
    OrderStatus,
)
from .observability import logger
from .repository import ORDER_COLUMNS, log_step, order_from_row
from .watchdog import execution_arn_for

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
else:
    SFNClient = Any

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
MAX_IDEMPOTENCY_KEY = 128
MAX_PAYMENT_TOKEN = 255
MAX_EMAIL = 254
MAX_REASON = 500
MAX_TOTAL = Decimal("99999999.99")  # DECIMAL(10,2)
ER_DUP_ENTRY = 1062

# Always matched with fullmatch: `$` alone would accept a trailing newline.
_UUID = re.compile(ORDER_ID_PATTERN)
_PRODUCT_ID = re.compile(PRODUCT_ID_PATTERN)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class NewOrder:
    """A CreateOrder request as the client sent it (not validated yet)."""

    idempotency_key: str
    items: Sequence[tuple[str, int]]
    payment_token: str
    email: str = ""

    @property
    def request_hash(self) -> str:
        """Identifies the body behind an idempotency key; line order does not matter."""
        body = {"items": sorted(self.items), "payment_token": self.payment_token, "email": self.email}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CatalogEntry:
    unit_price: Decimal
    currency: str


@dataclass(frozen=True)
class PricedOrder:
    items: list[OrderItem]
    total: Decimal
    currency: str


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_page_token: str


def validate_new_order(request: NewOrder) -> list[FieldViolation]:
    violations = [
        *_text_violations("idempotency_key", request.idempotency_key, MAX_IDEMPOTENCY_KEY, required=True),
        *_text_violations("payment_token", request.payment_token, MAX_PAYMENT_TOKEN, required=True),
        *_text_violations("email", request.email, MAX_EMAIL, required=False),
    ]
    if request.email and len(request.email) <= MAX_EMAIL and not _EMAIL.fullmatch(request.email):
        violations.append(FieldViolation("email", "is not an e-mail address"))
    if not request.items:
        violations.append(FieldViolation("items", "an order needs at least one item"))
    elif len(request.items) > MAX_ORDER_LINES:
        violations.append(FieldViolation("items", f"at most {MAX_ORDER_LINES} lines per order"))
        return violations  # one message for the list, not a hundred for its lines
    seen: set[str] = set()
    for index, (product_id, quantity) in enumerate(request.items):
        violations.extend(_item_violations(f"items[{index}]", product_id, quantity, seen))
        seen.add(product_id)
    return violations


def _text_violations(field: str, value: str, max_length: int, *, required: bool) -> list[FieldViolation]:
    if required and not value.strip():
        return [FieldViolation(field, "is required")]
    if len(value) > max_length:
        return [FieldViolation(field, f"at most {max_length} characters")]
    return []


def _item_violations(path: str, product_id: str, quantity: int, seen: set[str]) -> list[FieldViolation]:
    violations = []
    if not product_id:
        violations.append(FieldViolation(f"{path}.product_id", "is required"))
    elif len(product_id) > MAX_PRODUCT_ID or not _PRODUCT_ID.fullmatch(product_id):
        violations.append(
            FieldViolation(f"{path}.product_id", f"1 to {MAX_PRODUCT_ID} of A-Z, a-z, 0-9, '.', '_', '-'")
        )
    elif product_id in seen:
        violations.append(FieldViolation(f"{path}.product_id", "names a product already in the order"))
    if not 1 <= quantity <= MAX_QUANTITY:
        violations.append(FieldViolation(f"{path}.quantity", f"must be between 1 and {MAX_QUANTITY}"))
    return violations


def validate_order_id(order_id: str, field: str = "order_id") -> None:
    if not _UUID.fullmatch(order_id):
        raise InvalidRequest([FieldViolation(field, "is not an order id (a lower-case UUID)")])


class OrderService:
    """The edge's domain operations. Thread-safe: each thread gets its own MySQL connection."""

    def __init__(
        self,
        database_factory: Callable[[], Database],
        cache: "redis.Redis",
        stepfunctions: SFNClient,
        *,
        saga_arn: str,
        cancellation_arn: str,
        catalog_ttl_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database_factory = database_factory
        self._local = threading.local()
        self._catalog_ttl = catalog_ttl_seconds
        self._catalog_cache: dict[str, tuple[CatalogEntry, float]] = {}  # product -> (entry, expires)
        self._catalog_lock = threading.Lock()
        self._clock = clock
        self._cache = cache
        self._stepfunctions = stepfunctions
        self.saga_arn = saga_arn
        self.cancellation_arn = cancellation_arn

    # -- the operations ------------------------------------------------------------------------

    def create_order(self, user_id: str, request: NewOrder) -> Order:
        """Validate, price from the catalog, pre-check availability, store PENDING, start the saga.

        One transaction per new order: the insert carries the execution ARN (the state machine's
        ARN and the order id name it before it exists) and is the idempotency check too (the
        unique key on user and idempotency key); a replay is looked up only when it collides."""
        violations = validate_new_order(request)
        if violations:
            raise InvalidRequest(violations)
        try:
            priced = self._price_and_check(request)
        except (InvalidRequest, UnknownProduct, OutOfStock) as exc:
            # A replay is answered as before even if the catalog or the stock changed since.
            return self._replay_or_raise(user_id, request, exc)
        try:
            order = self._insert(str(uuid.uuid4()), user_id, request, priced)
        except pymysql.err.IntegrityError as exc:
            if exc.args[0] != ER_DUP_ENTRY:
                raise
            return self._replay_or_raise(user_id, request, exc)  # the key was used: its replay
        self._start_or_leave_pending(order.order_id)
        return order

    def get_order(self, user_id: str, order_id: str) -> Order:
        validate_order_id(order_id)
        with self._database().transaction() as cursor:
            orders = self._load(cursor, "order_id = %s AND user_id = %s", (order_id, user_id))
        if not orders:
            raise OrderNotFound(f"no order {order_id}")
        return orders[0]

    def list_orders(
        self, user_id: str, *, page_size: int, page_token: str, status: OrderStatus | None
    ) -> OrderPage:
        """The user's orders, newest first, by keyset pagination (stable under concurrent inserts)."""
        if page_size < 0:
            raise InvalidRequest([FieldViolation("page_size", "must not be negative")])
        limit = min(page_size or PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)
        where, params = "user_id = %s", list[Any]([user_id])
        if status is not None:
            where, params = where + " AND status = %s", [*params, status.value]
        if page_token:
            created_at, last_id = _decode_page_token(page_token, status)
            where += " AND (created_at < %s OR (created_at = %s AND order_id < %s))"
            params += [created_at, created_at, last_id]
        with self._database().transaction() as cursor:
            orders = self._load(
                cursor, f"{where} ORDER BY created_at DESC, order_id DESC LIMIT {limit + 1}", tuple(params)
            )
        next_token = _encode_page_token(orders[limit - 1], status) if len(orders) > limit else ""
        return OrderPage(orders[:limit], next_token)

    def cancel_order(self, user_id: str, order_id: str, reason: str) -> Order:
        """Design §5: PENDING → flag for the saga; CONFIRMED → CANCELLING and the cancellation
        saga; CANCELLED → unchanged; FAILED or NEEDS_ATTENTION → InvalidStateTransition."""
        validate_order_id(order_id)
        if len(reason) > MAX_REASON:
            raise InvalidRequest([FieldViolation("reason", f"at most {MAX_REASON} characters")])
        with self._database().transaction() as cursor:
            orders = self._load(cursor, "order_id = %s AND user_id = %s FOR UPDATE", (order_id, user_id))
            if not orders:
                raise OrderNotFound(f"no order {order_id}")
            status = orders[0].status
            if status in {OrderStatus.FAILED, OrderStatus.NEEDS_ATTENTION}:
                raise InvalidStateTransition(f"order {order_id} is {status}; it cannot be cancelled")
            if status is OrderStatus.PENDING and not orders[0].cancel_requested:
                cursor.execute(
                    "UPDATE orders SET cancel_requested = TRUE, version = version + 1 WHERE order_id = %s",
                    (order_id,),
                )
                log_step(cursor, order_id, "CancelOrder", "REQUESTED", reason)
            elif status is OrderStatus.CONFIRMED:
                # The cancellation's ARN is stored with CANCELLING, before its start (as CreateOrder
                # stores the saga's): whatever becomes of the start, the order says it is cancelling.
                cursor.execute(
                    "UPDATE orders SET status = 'CANCELLING', cancellation_execution_arn = %s,"
                    " version = version + 1 WHERE order_id = %s",
                    (execution_arn_for(self.cancellation_arn, order_id), order_id),
                )
                log_step(cursor, order_id, "CancelOrder", OrderStatus.CANCELLING, reason)
        if status is OrderStatus.CONFIRMED:
            publish_status(self._cache, order_id, OrderStatus.CANCELLING)
        if status in {OrderStatus.CONFIRMED, OrderStatus.CANCELLING}:
            # Also on CANCELLING: a retry after a failed start starts it now (same name: at most once).
            # A start that failed leaves the order CANCELLING with no such execution: the watchdog
            # (the reconciler's pass) then finishes the cancellation itself.
            self._start(self.cancellation_arn, order_id)
        return self.get_order(user_id, order_id)

    def watch_order(
        self,
        user_id: str,
        order_id: str,
        *,
        is_active: Callable[[], bool],
        wait_seconds: float = 1.0,
        reread_seconds: float = 5.0,
    ) -> Iterator[Order]:
        """The order now, then at every status change until a terminal status or `is_active()`
        turns false (the client cancelled or the deadline passed). Subscribing comes before the
        first read, so a change committed in between is not missed; a periodic re-read covers a
        lost publish (it is sent after the commit, best effort)."""
        validate_order_id(order_id)
        pubsub = self._cache.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(status_channel(order_id))
            last = self.get_order(user_id, order_id)
            yield last
            last_read = time.monotonic()
            while not last.status.is_terminal and is_active():
                message = pubsub.get_message(timeout=wait_seconds)
                if message is None and time.monotonic() - last_read < reread_seconds:
                    continue
                current, last_read = self.get_order(user_id, order_id), time.monotonic()
                if current.status != last.status:
                    yield current
                last = current
        except redis.RedisError as exc:
            raise CacheUnavailable(f"Redis status feed: {exc}") from exc
        finally:
            pubsub.close()

    def start_orphans(self, grace_seconds: float, limit: int = 100) -> list[str]:
        """Start the sagas of PENDING orders whose saga shows no sign of life: no step wrote to
        saga_log and no reconciler started it (the edge died between the insert and
        StartExecution, or Step Functions throttled it). The database clock judges the age."""
        with self._database().transaction() as cursor:
            cursor.execute(
                "SELECT order_id FROM orders o WHERE status = 'PENDING' "
                "AND created_at < CURRENT_TIMESTAMP(3) - INTERVAL %s MICROSECOND "
                "AND NOT EXISTS (SELECT 1 FROM saga_log l WHERE l.saga_id = o.order_id "
                "AND l.step NOT IN ('CreateOrder', 'CancelOrder')) "
                "ORDER BY created_at LIMIT %s",
                (int(grace_seconds * 1_000_000), limit),
            )
            orphans = [row["order_id"] for row in cursor.fetchall()]
        started = []
        for order_id in orphans:
            try:
                self._start_saga(order_id)
            except WorkflowUnavailable as exc:
                logger.warning("orphan not started", extra={"order_id": order_id, "error": str(exc)})
                continue
            started.append(order_id)
        return started

    # -- steps ---------------------------------------------------------------------------------

    def _database(self) -> Database:
        database: Database | None = getattr(self._local, "database", None)
        if database is None:
            database = self._local.database = self._database_factory()
        return database

    def _find_by_idempotency_key(self, user_id: str, key: str) -> tuple[Order, str] | None:
        with self._database().transaction() as cursor:
            cursor.execute(
                "SELECT order_id, request_hash FROM orders WHERE user_id = %s AND idempotency_key = %s",
                (user_id, key),
            )
            row = cursor.fetchone()
            if row is None:
                return None
            orders = self._load(cursor, "order_id = %s", (row["order_id"],))
        return orders[0], row["request_hash"]

    def _replay_or_raise(self, user_id: str, request: NewOrder, error: Exception) -> Order:
        """The order stored under this request's idempotency key; without one, `error` stands."""
        existing = self._find_by_idempotency_key(user_id, request.idempotency_key)
        if existing is None:
            raise error
        order, request_hash = existing
        if request_hash != request.request_hash:
            raise IdempotencyConflict(
                f"idempotency key {request.idempotency_key!r} was used for another order ({order.order_id})"
            )
        if order.status is OrderStatus.PENDING:
            # The first attempt may have stored it without starting it; a second start of the
            # same name is no second execution.
            self._start_or_leave_pending(order.order_id)
        return order

    def _start_or_leave_pending(self, order_id: str) -> None:
        """Start the saga; when Step Functions refuses (throttled, unreachable) the order stays
        PENDING and the reconciler starts it. The client gets its answer either way."""
        try:
            self._start(self.saga_arn, order_id)
        except WorkflowUnavailable as exc:
            logger.warning(
                "saga not started; the reconciler will", extra={"order_id": order_id, "error": str(exc)}
            )

    def _price_and_check(self, request: NewOrder) -> PricedOrder:
        priced = _price(request, self._catalog([product_id for product_id, _ in request.items]))
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
            where = f"product_id IN ({_placeholders(product_ids)})"
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

    def _insert(self, order_id: str, user_id: str, request: NewOrder, priced: PricedOrder) -> Order:
        """The order, its execution ARN and its lines in ONE transaction, with the saga log's first
        entry; the order as stored (its timestamps are the database's)."""
        execution_arn = execution_arn_for(self.saga_arn, order_id)
        with self._database().transaction() as cursor:
            cursor.execute(
                "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency, "
                "email, payment_token, status, execution_arn) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'PENDING', %s)",
                (
                    order_id,
                    user_id,
                    request.idempotency_key,
                    request.request_hash,
                    priced.total,
                    priced.currency,
                    request.email or None,
                    request.payment_token,
                    execution_arn,
                ),
            )
            cursor.executemany(
                "INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                "VALUES (%s, %s, %s, %s)",
                [(order_id, item.product_id, item.quantity, item.unit_price) for item in priced.items],
            )
            log_step(cursor, order_id, "CreateOrder", OrderStatus.PENDING, None)
            cursor.execute("SELECT created_at FROM orders WHERE order_id = %s", (order_id,))
            row = cursor.fetchone()
        assert row is not None  # inserted by this transaction
        return Order(
            order_id=order_id,
            user_id=user_id,
            idempotency_key=request.idempotency_key,
            status=OrderStatus.PENDING,
            items=tuple(priced.items),
            total=priced.total,
            currency=priced.currency,
            email=request.email or None,
            payment_token=request.payment_token,
            execution_arn=execution_arn,
            created_at=row["created_at"],
            updated_at=row["created_at"],
        )

    def _start_saga(self, order_id: str) -> None:
        """The reconciler's start: StartExecution, then its mark in saga_log (so the next pass
        leaves the order alone) and the execution ARN on an order stored without one."""
        arn = self._start(self.saga_arn, order_id)
        with self._database().transaction() as cursor:
            cursor.execute(
                "UPDATE orders SET execution_arn = %s WHERE order_id = %s AND execution_arn IS NULL",
                (arn, order_id),
            )
            log_step(cursor, order_id, "Reconciler", "STARTED", None)

    def _start(self, state_machine_arn: str, order_id: str) -> str:
        """StartExecution named after the order, which makes a double start impossible. When the
        name is taken, the ARN of that execution is returned, running or closed: whether it finished
        its order is decided from its status (DescribeExecution) by the saga watchdog, not here."""
        try:
            answer = self._stepfunctions.start_execution(
                stateMachineArn=state_machine_arn, name=order_id, input=json.dumps({"order_id": order_id})
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return execution_arn_for(state_machine_arn, order_id)
            raise WorkflowUnavailable(f"StartExecution on {state_machine_arn}: {exc}") from exc
        except BotoCoreError as exc:
            raise WorkflowUnavailable(f"StartExecution on {state_machine_arn}: {exc}") from exc
        return answer["executionArn"]

    @staticmethod
    def _load(cursor: Cursor, where: str, params: tuple[Any, ...]) -> list[Order]:
        cursor.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE {where}", params)  # noqa: S608
        rows = cursor.fetchall()
        if not rows:
            return []
        ids = [row["order_id"] for row in rows]
        columns = "order_id, product_id, quantity, unit_price"
        query = f"SELECT {columns} FROM order_items WHERE order_id IN ({_placeholders(ids)})"  # noqa: S608
        cursor.execute(f"{query} ORDER BY order_id, product_id", tuple(ids))
        items: dict[str, list[dict[str, Any]]] = {}
        for item in cursor.fetchall():
            items.setdefault(item.pop("order_id"), []).append(item)
        return [order_from_row(row, items.get(row["order_id"], [])) for row in rows]


def _price(request: NewOrder, catalog: dict[str, CatalogEntry]) -> PricedOrder:
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


def _placeholders(values: Sequence[object]) -> str:
    """`%s, %s, ...` for an IN list: the values themselves always travel as parameters."""
    return ", ".join(["%s"] * len(values))


def _encode_page_token(last: Order, status: OrderStatus | None) -> str:
    body = {"t": last.created_at.isoformat(), "i": last.order_id, "s": status.value if status else ""}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def _decode_page_token(token: str, status: OrderStatus | None) -> tuple[datetime, str]:
    """The position a token encodes; a token not made by list_orders, or made for another status
    filter, is an InvalidRequest."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        created_at, order_id, token_status = datetime.fromisoformat(body["t"]), body["i"], body["s"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidRequest([FieldViolation("page_token", "is not a token from ListOrders")]) from exc
    if not isinstance(order_id, str) or not _UUID.fullmatch(order_id):
        raise InvalidRequest([FieldViolation("page_token", "is not a token from ListOrders")])
    if token_status != (status.value if status else ""):
        raise InvalidRequest([FieldViolation("page_token", "was issued for another status filter")])
    return created_at, order_id
