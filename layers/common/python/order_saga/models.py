"""Domain models: the tables' rows (docs/architecture.md) as validated values, for functions and the edge."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_ORDER_LINES = 100
MAX_QUANTITY = 1000
# The id rules, used by these models (the steps' input) and by the edge's request validation.
ORDER_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
PRODUCT_ID_PATTERN = r"^[A-Za-z0-9._-]+$"
MAX_PRODUCT_ID = 36
# A customer: Cognito's `sub` (a UUID) in AWS, a name such as `alice` locally.
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"
MAX_CUSTOMER_ID = 128  # orders.user_id

OrderId = Annotated[str, StringConstraints(pattern=ORDER_ID_PATTERN)]
"""A lower-case UUID: the primary key of an order and the name of its saga execution."""

ProductId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_PRODUCT_ID, pattern=PRODUCT_ID_PATTERN)
]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CUSTOMER_ID)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]


@dataclass(frozen=True)
class Actor:
    """Whom an operation of the edge acts for: the customer, whose orders alone it sees, and the
    app client that called (the customer's own app, or a service acting for the customer)."""

    customer_id: str
    client_id: str


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"

    @property
    def is_terminal(self) -> bool:
        """No saga will move the order on by itself (WatchOrder ends here)."""
        return self not in {OrderStatus.PENDING, OrderStatus.CANCELLING}


class PaymentStatus(StrEnum):
    CHARGING = "CHARGING"  # the intent, committed before the gateway is called
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"


class ReservationStatus(StrEnum):
    RESERVED = "RESERVED"
    RELEASED = "RELEASED"
    COMMITTED = "COMMITTED"


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderItem(Model):
    product_id: ProductId
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    unit_price: Money | None = None


class Order(Model):
    order_id: OrderId
    user_id: UserId
    idempotency_key: str
    status: OrderStatus
    items: tuple[OrderItem, ...]
    total: Money
    currency: Currency
    email: str | None = None
    payment_token: str
    failure_reason: str | None = None
    reason_code: str | None = None
    owed_compensations: frozenset[str] = frozenset()  # what a NEEDS_ATTENTION order still owes
    execution_arn: str | None = None
    cancellation_execution_arn: str | None = None
    cancel_requested: bool = False
    version: int = 0
    created_at: datetime
    updated_at: datetime


class Payment(Model):
    payment_id: str
    order_id: OrderId
    amount: Money
    currency: Currency
    idempotency_key: str | None = None
    status: PaymentStatus
    gateway_response: str | None = None
    gateway_reference: str | None = None
    created_at: datetime
    updated_at: datetime


class Product(Model):
    """A row of the inventory table: the catalog price and the stock of one product."""

    product_id: ProductId
    stock: int = Field(ge=0)
    reserved: int = Field(ge=0)
    unit_price: Money
    currency: Currency

    @property
    def available(self) -> int:
        return self.stock - self.reserved


class Reservation(Model):
    order_id: OrderId
    product_id: ProductId
    quantity: int = Field(ge=0)
    status: ReservationStatus


class SagaLogEntry(Model):
    saga_id: OrderId
    step: str = Field(max_length=40)
    status: str = Field(max_length=20)
    detail: str | None = None
    timestamp: datetime
