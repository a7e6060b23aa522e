"""ListOrders' pages: newest first, by keyset pagination (stable under concurrent inserts). A page
token is the position of the last order shown (its creation time and id) and the status filter
it was issued for; it is opaque to clients and checked when it comes back."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from .errors import FieldViolation, InvalidRequest
from .models import Order, OrderStatus
from .order_requests import ORDER_ID

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_page_token: str


def page_limit(page_size: int) -> int:
    """How many orders a page holds: the default for 0, at most PAGE_SIZE_MAX."""
    if page_size < 0:
        raise InvalidRequest([FieldViolation("page_size", "must not be negative")])
    return min(page_size or PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)


def encode_page_token(last: Order, status: OrderStatus | None) -> str:
    body = {"t": last.created_at.isoformat(), "i": last.order_id, "s": status.value if status else ""}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def decode_page_token(token: str, status: OrderStatus | None) -> tuple[datetime, str]:
    """The position a token encodes; a token not made by list_orders, or made for another status
    filter, is an InvalidRequest."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        created_at, order_id, token_status = datetime.fromisoformat(body["t"]), body["i"], body["s"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidRequest([FieldViolation("page_token", "is not a token from ListOrders")]) from exc
    if not isinstance(order_id, str) or not ORDER_ID.fullmatch(order_id):
        raise InvalidRequest([FieldViolation("page_token", "is not a token from ListOrders")])
    if token_status != (status.value if status else ""):
        raise InvalidRequest([FieldViolation("page_token", "was issued for another status filter")])
    return created_at, order_id
