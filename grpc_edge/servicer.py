"""OrderService: each RPC turns its request into one call of the domain and its answer into
protobuf. No rule lives here; errors are mapped by the interceptor chain."""

import threading
from collections.abc import Iterator

import grpc

from order_saga.errors import RateLimited
from order_saga.order_service import NewOrder, OrderService

from .auth import current_principal
from .convert import order_to_proto, status_from_proto
from .generated.orders.v1 import orders_pb2 as pb
from .generated.orders.v1 import orders_pb2_grpc

WATCH_RETRY_SECONDS = 5


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: OrderService, *, max_watches: int, watch_reread_seconds: float = 5.0) -> None:
        self.orders = orders
        self.watch_reread_seconds = watch_reread_seconds
        # An open stream holds a server thread; capping them keeps threads for the unary RPCs.
        self._watch_slots = threading.BoundedSemaphore(max_watches)

    def CreateOrder(
        self, request: pb.CreateOrderRequest, context: grpc.ServicerContext
    ) -> pb.CreateOrderResponse:
        new_order = NewOrder(
            idempotency_key=request.idempotency_key,
            items=[(item.product_id, item.quantity) for item in request.items],
            payment_token=request.payment_token,
            email=request.email,
        )
        order = self.orders.create_order(current_principal().subject, new_order)
        return pb.CreateOrderResponse(order=order_to_proto(order))

    def GetOrder(self, request: pb.GetOrderRequest, context: grpc.ServicerContext) -> pb.Order:
        return order_to_proto(self.orders.get_order(current_principal().subject, request.order_id))

    def CancelOrder(self, request: pb.CancelOrderRequest, context: grpc.ServicerContext) -> pb.Order:
        order = self.orders.cancel_order(current_principal().subject, request.order_id, request.reason)
        return order_to_proto(order)

    def ListOrders(
        self, request: pb.ListOrdersRequest, context: grpc.ServicerContext
    ) -> pb.ListOrdersResponse:
        page = self.orders.list_orders(
            current_principal().subject,
            page_size=request.page_size,
            page_token=request.page_token,
            status=status_from_proto(request.status),
        )
        return pb.ListOrdersResponse(
            orders=[order_to_proto(order) for order in page.orders], next_page_token=page.next_page_token
        )

    def WatchOrder(self, request: pb.WatchOrderRequest, context: grpc.ServicerContext) -> Iterator[pb.Order]:
        if not self._watch_slots.acquire(blocking=False):
            raise RateLimited(
                "too many open WatchOrder streams on this server", retry_after=WATCH_RETRY_SECONDS
            )
        try:
            for order in self.orders.watch_order(
                current_principal().subject,
                request.order_id,
                is_active=context.is_active,
                reread_seconds=self.watch_reread_seconds,
            ):
                yield order_to_proto(order)
        finally:
            self._watch_slots.release()
