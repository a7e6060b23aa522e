"""What the steps tell Redis after they commit: product availability and order status changes.

MySQL stays the truth. The availability cache lets the edge refuse obviously unavailable items
fast (entries expire, so a cache write that lost a race heals by itself); the status channel
lets WatchOrder stream changes without polling. Redis being down never fails a committed step.
"""

import redis

from .models import OrderStatus
from .observability import logger

AVAILABILITY_TTL_SECONDS = 300


def availability_key(product_id: str) -> str:
    return f"order-saga:available:{product_id}"


def status_channel(order_id: str) -> str:
    return f"order-saga:order-status:{order_id}"


def write_availability(client: "redis.Redis", available: dict[str, int]) -> None:
    try:
        with client.pipeline(transaction=False) as pipe:
            for product_id, units in available.items():
                pipe.set(availability_key(product_id), units, ex=AVAILABILITY_TTL_SECONDS)
            pipe.execute()
    except redis.RedisError as exc:
        logger.warning("availability cache not updated", extra={"error": str(exc)})


def publish_status(client: "redis.Redis", order_id: str, status: OrderStatus) -> None:
    try:
        client.publish(status_channel(order_id), status.value)
    except redis.RedisError as exc:
        logger.warning("status change not published", extra={"error": str(exc), "status": status.value})
