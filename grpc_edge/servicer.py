"""OrderService: each RPC turns its request into one call of the domain and its answer into
protobuf. No rule lives here; errors are mapped by the interceptor chain."""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from order_saga.errors import RateLimited
from order_saga.order_requests import NewOrder
from order_saga.order_service import OrderService

from .auth import current_actor
from .convert import order_to_proto, status_from_proto
from .generated.orders.v1 import orders_pb2 as pb
from .generated.orders.v1 import orders_pb2_grpc

WATCH_RETRY_SECONDS = 5


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(
        self,
        orders: OrderService,
        *,
        max_watches: int,
        max_watches_per_user: int = 4,
        watch_max_seconds: float = 900.0,
        watch_reread_seconds: float = 5.0,
    ) -> None:
        self.orders = orders
        self.watch_reread_seconds = watch_reread_seconds
        # An open stream holds a server thread; capping them keeps threads for the unary RPCs, and
        # a cap per customer keeps one customer from taking every slot.
        self._watch_slots = threading.BoundedSemaphore(max_watches)
        self._max_watches_per_user = max_watches_per_user
        self._watch_max_seconds = watch_max_seconds
        self._watches: Counter[str] = Counter()
        self._watches_lock = threading.Lock()

    def CreateOrder(
        self, request: pb.CreateOrderRequest, context: grpc.ServicerContext
    ) -> pb.CreateOrderResponse:
        new_order = NewOrder(
            idempotency_key=request.idempotency_key,
            items=[(item.product_id, item.quantity) for item in request.items],
            payment_token=request.payment_token,
            email=request.email,
        )
        order = self.orders.create_order(current_actor(), new_order)
        return pb.CreateOrderResponse(order=order_to_proto(order))

    def GetOrder(self, request: pb.GetOrderRequest, context: grpc.ServicerContext) -> pb.Order:
        return order_to_proto(self.orders.get_order(current_actor(), request.order_id))

    def CancelOrder(self, request: pb.CancelOrderRequest, context: grpc.ServicerContext) -> pb.Order:
        order = self.orders.cancel_order(current_actor(), request.order_id, request.reason)
        return order_to_proto(order)

    def ListOrders(
        self, request: pb.ListOrdersRequest, context: grpc.ServicerContext
    ) -> pb.ListOrdersResponse:
        page = self.orders.list_orders(
            current_actor(),
            page_size=request.page_size,
            page_token=request.page_token,
            status=status_from_proto(request.status),
        )
        return pb.ListOrdersResponse(
            orders=[order_to_proto(order) for order in page.orders], next_page_token=page.next_page_token
        )

    def WatchOrder(self, request: pb.WatchOrderRequest, context: grpc.ServicerContext) -> Iterator[pb.Order]:
        """A stream ends (OK) after WATCH_MAX_SECONDS at the latest: the client opens a new one."""
        actor = current_actor()
        with self._watch_slot(actor.customer_id):
            deadline = time.monotonic() + self._watch_max_seconds

            def is_active() -> bool:
                return context.is_active() and time.monotonic() < deadline

            for order in self.orders.watch_order(
                actor, request.order_id, is_active=is_active, reread_seconds=self.watch_reread_seconds
            ):
                yield order_to_proto(order)

    @contextmanager
    def _watch_slot(self, customer: str) -> Iterator[None]:
        with self._watches_lock:
            if self._watches[customer] >= self._max_watches_per_user:
                raise RateLimited(
                    f"at most {self._max_watches_per_user} open WatchOrder streams per customer",
                    retry_after=WATCH_RETRY_SECONDS,
                )
            if not self._watch_slots.acquire(blocking=False):
                raise RateLimited(
                    "too many open WatchOrder streams on this server", retry_after=WATCH_RETRY_SECONDS
                )
            self._watches[customer] += 1
        try:
            yield
        finally:
            with self._watches_lock:
                self._watches[customer] -= 1
                if not self._watches[customer]:
                    del self._watches[customer]
            self._watch_slots.release()
