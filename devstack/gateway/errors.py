"""The gateway's typed errors, and the one table that turns each into its HTTP answer."""

import json
from dataclasses import dataclass, field
from typing import Any

INVALID_REQUEST = "invalid_request_error"
IDEMPOTENCY = "idempotency_error"


@dataclass(frozen=True)
class Answer:
    """What the server sends back: a status, a JSON body and any extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(self.body).encode()


class GatewayError(Exception):
    """A request the gateway answers with an error; `fields` join the error object (param, charge...)."""

    code: str

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class ParameterMissing(GatewayError):
    code = "parameter_missing"


class ParameterInvalid(GatewayError):
    code = "parameter_invalid"


class ChargeAlreadyRefunded(GatewayError):
    code = "charge_already_refunded"


class AmountTooLarge(GatewayError):
    code = "amount_too_large"


class ChargeNotRefundable(GatewayError):
    code = "charge_not_refundable"


class PaymentIntentUnexpectedState(GatewayError):
    code = "payment_intent_unexpected_state"


class IdempotencyKeyMissing(GatewayError):
    code = "idempotency_key_missing"


class IdempotencyKeyReused(GatewayError):
    code = "idempotency_key_reused"


class IdempotencyKeyInUse(GatewayError):
    code = "idempotency_key_in_use"


class InvalidApiKey(GatewayError):
    code = "invalid_api_key"


class ApiKeyExpired(GatewayError):
    code = "api_key_expired"


class CardDeclined(GatewayError):
    """Carries `decline_code` and `charge` (the failed charge's id, or None when none was made)."""

    code = "card_declined"


class ResourceMissing(GatewayError):
    code = "resource_missing"


class RateLimited(GatewayError):
    """`retry_after`: the whole seconds after which a request would be let through."""

    code = "rate_limit"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    code = "unavailable"


class LoopbackOnly(GatewayError):
    """The control endpoints answer the machine's own clients only."""

    code = "loopback_only"


# (status, error type) by class; the contract's table in docs/payment-gateway.md.
ANSWERS: dict[type[GatewayError], tuple[int, str]] = {
    ParameterMissing: (400, INVALID_REQUEST),
    ParameterInvalid: (400, INVALID_REQUEST),
    ChargeAlreadyRefunded: (400, INVALID_REQUEST),
    AmountTooLarge: (400, INVALID_REQUEST),
    ChargeNotRefundable: (400, INVALID_REQUEST),
    PaymentIntentUnexpectedState: (400, INVALID_REQUEST),
    IdempotencyKeyMissing: (400, IDEMPOTENCY),
    IdempotencyKeyReused: (400, IDEMPOTENCY),
    InvalidApiKey: (401, "authentication_error"),
    ApiKeyExpired: (401, "authentication_error"),
    CardDeclined: (402, "card_error"),
    LoopbackOnly: (403, INVALID_REQUEST),
    ResourceMissing: (404, INVALID_REQUEST),
    IdempotencyKeyInUse: (409, IDEMPOTENCY),
    RateLimited: (429, "rate_limit_error"),
    Unavailable: (503, "api_error"),
}


def error_answer(error: GatewayError) -> Answer:
    status, kind = ANSWERS[type(error)]
    body = {"error": {"type": kind, "code": error.code, "message": error.message, **error.fields}}
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else {}
    return Answer(status, body, headers)


def internal_error_answer() -> Answer:
    """An unexpected failure: nothing was stored, so the request can be tried again."""
    return Answer(500, {"error": {"type": "api_error", "code": "unavailable", "message": "internal error"}})
