"""Domain models ↔ protobuf messages of orders.v1."""

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from order_saga.errors import FieldViolation, InvalidRequest
from order_saga.models import Order, OrderStatus

from .generated.orders.v1 import orders_pb2 as pb


def timestamp(value: datetime) -> Timestamp:
    """MySQL TIMESTAMP values come back naive, in the session time zone: UTC on RDS and here."""
    message = Timestamp()
    message.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return message


def order_to_proto(order: Order) -> pb.Order:
    return pb.Order(
        order_id=order.order_id,
        user_id=order.user_id,
        status=pb.OrderStatus.Value(f"ORDER_STATUS_{order.status.value}"),
        items=[pb.OrderItem(product_id=item.product_id, quantity=item.quantity) for item in order.items],
        total=f"{order.total:.2f}",
        currency=order.currency,
        failure_reason=order.failure_reason or "",
        reason_code=order.reason_code or "",
        created_at=timestamp(order.created_at),
        updated_at=timestamp(order.updated_at),
        cancel_requested=order.cancel_requested,
    )


def status_from_proto(value: int, field: str = "status") -> OrderStatus | None:
    """None for ORDER_STATUS_UNSPECIFIED (no filter); InvalidRequest for a number the enum lacks."""
    if value == pb.ORDER_STATUS_UNSPECIFIED:
        return None
    try:
        return OrderStatus(pb.OrderStatus.Name(value).removeprefix("ORDER_STATUS_"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidRequest([FieldViolation(field, f"{value} is not an OrderStatus")]) from exc


def status_name(value: int) -> str:
    return pb.OrderStatus.Name(value).removeprefix("ORDER_STATUS_")  # type: ignore[arg-type]
