"""The edge's operations on orders: create, read, list, cancel, watch, and start orphaned sagas.

Every operation acts for one customer (an Actor: the customer, and the app client that called for
them) and sees only that customer's orders; the saga log's entries name both.
MySQL is the truth; Redis serves the availability pre-check and the status feed; Step Functions
runs each order's saga under the execution name = order_id, which makes a second start of the
same order impossible.

A request is checked first (order_requests), a new order priced (pricing), a list paged
(order_pages); this module holds what the operations do with the database and Step Functions.
"""

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pymysql
import redis

from .db import Cursor, Database
from .errors import (
    CacheUnavailable,
    IdempotencyConflict,
    InvalidRequest,
    InvalidStateTransition,
    OrderNotFound,
    OutOfStock,
    UnknownProduct,
    WorkflowUnavailable,
)
from .feeds import publish_status, status_channel
from .models import Actor, Order, OrderStatus
from .observability import logger
from .order_pages import OrderPage, decode_page_token, encode_page_token, page_limit
from .order_requests import NewOrder, validate_new_order, validate_order_id, validate_reason
from .pricing import PricedOrder, Pricing
from .repository import ORDER_COLUMNS, log_step, order_from_row, placeholders
from .workflow import execution_arn_for, start_execution, start_saga

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
else:
    SFNClient = Any

ER_DUP_ENTRY = 1062


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
        self._pricing = Pricing(self._database, cache, catalog_ttl_seconds=catalog_ttl_seconds, clock=clock)
        self._cache = cache
        self._stepfunctions = stepfunctions
        self.saga_arn = saga_arn
        self.cancellation_arn = cancellation_arn

    # -- the operations ------------------------------------------------------------------------

    def create_order(self, actor: Actor, request: NewOrder) -> Order:
        """Validate, price from the catalog, pre-check availability, store PENDING, start the saga.

        One transaction per new order: the insert carries the execution ARN (the state machine's
        ARN and the order id name it before it exists) and is the idempotency check too (the
        unique key on customer and idempotency key); a replay is looked up only when it collides."""
        violations = validate_new_order(request)
        if violations:
            raise InvalidRequest(violations)
        try:
            priced = self._pricing.price_and_check(request)
        except (InvalidRequest, UnknownProduct, OutOfStock) as exc:
            # A replay is answered as before even if the catalog or the stock changed since.
            return self._replay_or_raise(actor.customer_id, request, exc)
        try:
            order = self._insert(str(uuid.uuid4()), actor, request, priced)
        except pymysql.err.IntegrityError as exc:
            if exc.args[0] != ER_DUP_ENTRY:
                raise
            return self._replay_or_raise(actor.customer_id, request, exc)  # the key was used: its replay
        self._start_or_leave_pending(order.order_id)
        return order

    def get_order(self, actor: Actor, order_id: str) -> Order:
        validate_order_id(order_id)
        with self._database().transaction() as cursor:
            orders = self._load(cursor, "order_id = %s AND user_id = %s", (order_id, actor.customer_id))
        if not orders:
            raise OrderNotFound(f"no order {order_id}")
        return orders[0]

    def list_orders(
        self, actor: Actor, *, page_size: int, page_token: str, status: OrderStatus | None
    ) -> OrderPage:
        """The customer's orders, newest first, by keyset pagination (stable under concurrent inserts)."""
        limit = page_limit(page_size)
        where, params = "user_id = %s", list[Any]([actor.customer_id])
        if status is not None:
            where, params = where + " AND status = %s", [*params, status.value]
        if page_token:
            created_at, last_id = decode_page_token(page_token, status)
            where += " AND (created_at < %s OR (created_at = %s AND order_id < %s))"
            params += [created_at, created_at, last_id]
        with self._database().transaction() as cursor:
            orders = self._load(
                cursor, f"{where} ORDER BY created_at DESC, order_id DESC LIMIT {limit + 1}", tuple(params)
            )
        next_token = encode_page_token(orders[limit - 1], status) if len(orders) > limit else ""
        return OrderPage(orders[:limit], next_token)

    def cancel_order(self, actor: Actor, order_id: str, reason: str) -> Order:
        """The cancellation rule (docs/architecture.md): PENDING → flag for the saga; CONFIRMED →
        CANCELLING and the cancellation saga; CANCELLED → unchanged; FAILED or NEEDS_ATTENTION →
        InvalidStateTransition."""
        validate_order_id(order_id)
        validate_reason(reason)
        with self._database().transaction() as cursor:
            orders = self._load(
                cursor, "order_id = %s AND user_id = %s FOR UPDATE", (order_id, actor.customer_id)
            )
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
                log_step(cursor, order_id, "CancelOrder", "REQUESTED", reason, actor=actor)
            elif status is OrderStatus.CONFIRMED:
                # The cancellation's ARN is stored with CANCELLING, before its start (as CreateOrder
                # stores the saga's): whatever becomes of the start, the order says it is cancelling.
                cursor.execute(
                    "UPDATE orders SET status = 'CANCELLING', cancellation_execution_arn = %s,"
                    " version = version + 1 WHERE order_id = %s",
                    (execution_arn_for(self.cancellation_arn, order_id), order_id),
                )
                log_step(cursor, order_id, "CancelOrder", OrderStatus.CANCELLING, reason, actor=actor)
        if status is OrderStatus.CONFIRMED:
            publish_status(self._cache, order_id, OrderStatus.CANCELLING)
        if status in {OrderStatus.CONFIRMED, OrderStatus.CANCELLING}:
            # Also on CANCELLING: a retry after a failed start starts it now (same name: at most once).
            # A start that failed leaves the order CANCELLING with no such execution: the watchdog
            # (the reconciler's pass) then finishes the cancellation itself.
            start_execution(self._stepfunctions, self.cancellation_arn, order_id)
        return self.get_order(actor, order_id)

    def watch_order(
        self,
        actor: Actor,
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
            last = self.get_order(actor, order_id)
            yield last
            last_read = time.monotonic()
            while not last.status.is_terminal and is_active():
                message = pubsub.get_message(timeout=wait_seconds)
                if message is None and time.monotonic() - last_read < reread_seconds:
                    continue
                current, last_read = self.get_order(actor, order_id), time.monotonic()
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
                start_saga(self._database(), self._stepfunctions, self.saga_arn, order_id, "Reconciler")
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
            start_execution(self._stepfunctions, self.saga_arn, order_id)
        except WorkflowUnavailable as exc:
            logger.warning(
                "saga not started; the reconciler will", extra={"order_id": order_id, "error": str(exc)}
            )

    def _insert(self, order_id: str, actor: Actor, request: NewOrder, priced: PricedOrder) -> Order:
        """The order, its execution ARN and its lines in ONE transaction, with the saga log's first
        entry; the order as stored. Its timestamps are written, not defaulted: this task's clock at
        the columns' millisecond precision, so nothing is read back (docs/decisions.md)."""
        execution_arn = execution_arn_for(self.saga_arn, order_id)
        created_at = stored_timestamp(datetime.now(UTC))
        with self._database().transaction() as cursor:
            cursor.execute(
                "INSERT INTO orders (order_id, user_id, idempotency_key, request_hash, total, currency, "
                "email, payment_token, status, execution_arn, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'PENDING', %s, %s, %s)",
                (
                    order_id,
                    actor.customer_id,
                    request.idempotency_key,
                    request.request_hash,
                    priced.total,
                    priced.currency,
                    request.email or None,
                    request.payment_token,
                    execution_arn,
                    created_at,
                    created_at,
                ),
            )
            cursor.executemany(
                "INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                "VALUES (%s, %s, %s, %s)",
                [(order_id, item.product_id, item.quantity, item.unit_price) for item in priced.items],
            )
            log_step(cursor, order_id, "CreateOrder", OrderStatus.PENDING, None, actor=actor)
        return Order(
            order_id=order_id,
            user_id=actor.customer_id,
            idempotency_key=request.idempotency_key,
            status=OrderStatus.PENDING,
            items=tuple(priced.items),
            total=priced.total,
            currency=priced.currency,
            email=request.email or None,
            payment_token=request.payment_token,
            execution_arn=execution_arn,
            created_at=created_at,
            updated_at=created_at,
        )

    @staticmethod
    def _load(cursor: Cursor, where: str, params: tuple[Any, ...]) -> list[Order]:
        cursor.execute(f"SELECT {ORDER_COLUMNS} FROM orders WHERE {where}", params)  # noqa: S608
        rows = cursor.fetchall()
        if not rows:
            return []
        ids = [row["order_id"] for row in rows]
        columns = "order_id, product_id, quantity, unit_price"
        query = f"SELECT {columns} FROM order_items WHERE order_id IN ({placeholders(ids)})"  # noqa: S608
        cursor.execute(f"{query} ORDER BY order_id, product_id", tuple(ids))
        items: dict[str, list[dict[str, Any]]] = {}
        for item in cursor.fetchall():
            items.setdefault(item.pop("order_id"), []).append(item)
        return [order_from_row(row, items.get(row["order_id"], [])) for row in rows]


def stored_timestamp(moment: datetime) -> datetime:
    """`moment` as a TIMESTAMP(3) column holds it: naive UTC (the sessions' time zone, here and on
    RDS), whole milliseconds (MySQL would round the rest and MariaDB cut it off)."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)
