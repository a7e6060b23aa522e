"""Typed errors of the domain.

The class name is the contract: Lambda reports it as `errorType`, and the state machine's
Retry and Catch match on it, so renaming a class is renaming an error in `statemachine/`.
The gRPC edge maps the same classes to status codes in one place.
"""


class OrderSagaError(Exception):
    """Base of every error this project raises on purpose."""


class BusinessError(OrderSagaError):
    """A decision, not a fault: retrying gives the same answer. Never retried by the saga."""


class InvalidOrder(BusinessError):
    """The input breaks a rule of the contract (a field is missing, malformed or out of range)."""


class UnknownProduct(BusinessError):
    """An order names a product that is not in the catalog."""


class OrderNotFound(BusinessError):
    """No such order (or not one the caller may see)."""


class PaymentDeclined(BusinessError):
    """The payment gateway declined the charge."""


class OutOfStock(BusinessError):
    """There are not enough unreserved units of a product."""


class OrderCancelled(BusinessError):
    """The customer asked to cancel before the order was confirmed."""


class StepAlreadyCompensated(BusinessError):
    """A forward step arrived after its compensation ran; it is rejected and changes nothing."""


class InvalidStateTransition(BusinessError):
    """The order is not in a state that allows the requested change."""


class OrderAlreadySettled(InvalidStateTransition):
    """The order ended FAILED or CANCELLED and owes nothing: MarkNeedsAttention does not flag it,
    since there is nothing left for a person to do (a saga that lost a race with the customer's
    cancellation asks for it)."""


class PaymentDisagreement(OrderSagaError):
    """Our payments row and the gateway disagree about a charge (the gateway does not know the
    charge we recorded, or holds less than we would refund). Never retried, never settled
    silently: the compensation is left owed, for a person who reads both records."""


class NoticeInFlight(OrderSagaError):
    """Another consumer claimed this notice and may be mailing it right now. Its message fails
    alone and comes back after the queue's visibility timeout, when the claim is SENT or stale."""


class TransientDependencyError(OrderSagaError):
    """A dependency failed in a way that may pass: safe to retry with backoff."""


class DatabaseUnavailable(TransientDependencyError):
    """MySQL could not be reached, or the connection was lost."""


class CacheUnavailable(TransientDependencyError):
    """Redis could not be reached, or the connection was lost."""


class PaymentGatewayUnavailable(TransientDependencyError):
    """The payment gateway did not answer, or answered that it is briefly unavailable."""


class ConfigurationError(OrderSagaError):
    """The deployment is wrong (credentials, settings): retrying does not help, a person must act."""


class NotAStateMachineArn(ConfigurationError):
    """A setting that should name a state machine (or its alias or version) names something else."""


TRANSIENT_ERRORS: tuple[type[TransientDependencyError], ...] = (
    DatabaseUnavailable,
    CacheUnavailable,
    PaymentGatewayUnavailable,
)
"""The concrete transient classes, by which the state machines' Retry blocks name them."""


# Errors of the public API (the gRPC edge maps each to a status code in grpc_edge/errors.py).


class FieldViolation:
    """One field of a request and what is wrong with it (google.rpc.BadRequest at the edge)."""

    __slots__ = ("description", "field")

    def __init__(self, field: str, description: str) -> None:
        self.field = field
        self.description = description

    def __repr__(self) -> str:
        return f"FieldViolation({self.field!r}, {self.description!r})"


class InvalidRequest(InvalidOrder):
    """Fields of a request break the contract; each violation names its field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


class IdempotencyConflict(BusinessError):
    """The idempotency key was used before by the same user for a different request body."""


class NotAuthenticated(BusinessError):
    """The caller presented no valid access token."""


class PermissionDenied(BusinessError):
    """The access token lacks the scope the operation needs."""


class RateLimited(BusinessError):
    """The caller sent more requests than its per-minute allowance."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class WorkflowUnavailable(OrderSagaError):
    """Step Functions did not accept a StartExecution call (throttled, unreachable, failing).

    Safe to retry, like a TransientDependencyError, but only the edge raises it: no state machine
    retries on it, so it stays out of TRANSIENT_ERRORS."""
