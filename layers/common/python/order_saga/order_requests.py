"""What a client asks of its orders, checked before anything is read or written: a new order,
an order id, a cancellation's reason. A request that fails a check changes nothing and is
answered with every violation at once."""

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import FieldViolation, InvalidRequest
from .models import (
    CUSTOMER_ID_PATTERN,
    MAX_CUSTOMER_ID,
    MAX_ORDER_LINES,
    MAX_PRODUCT_ID,
    MAX_QUANTITY,
    ORDER_ID_PATTERN,
    PRODUCT_ID_PATTERN,
)

MAX_IDEMPOTENCY_KEY = 128
MAX_PAYMENT_TOKEN = 255
MAX_EMAIL = 254
MAX_REASON = 500

# Always matched with fullmatch: `$` alone would accept a trailing newline.
ORDER_ID = re.compile(ORDER_ID_PATTERN)
_PRODUCT_ID = re.compile(PRODUCT_ID_PATTERN)
_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
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
    if not ORDER_ID.fullmatch(order_id):
        raise InvalidRequest([FieldViolation(field, "is not an order id (a lower-case UUID)")])


def customer_id_violation(customer_id: str, field: str) -> FieldViolation | None:
    """What is wrong with a customer id (a token's subject, or the customer a service names)."""
    if len(customer_id) > MAX_CUSTOMER_ID or not _CUSTOMER_ID.fullmatch(customer_id):
        return FieldViolation(
            field, f"is not a customer id (1 to {MAX_CUSTOMER_ID} letters, digits and . _ @ -)"
        )
    return None


def validate_reason(reason: str) -> None:
    if len(reason) > MAX_REASON:
        raise InvalidRequest([FieldViolation("reason", f"at most {MAX_REASON} characters")])
