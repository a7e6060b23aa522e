"""The one place where the domain's typed errors become gRPC status codes.

A client's mistake is never INTERNAL: every rule a request can break raises a typed error that
maps below. Only an unexpected exception is INTERNAL, with a message that reveals nothing.
"""

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from order_saga.errors import (
    BusinessError,
    CacheUnavailable,
    ConfigurationError,
    DatabaseUnavailable,
    IdempotencyConflict,
    InvalidOrder,
    InvalidRequest,
    NotAuthenticated,
    OrderNotFound,
    OrderSagaError,
    PaymentGatewayUnavailable,
    PermissionDenied,
    RateLimited,
    TransientDependencyError,
    WorkflowUnavailable,
)
from order_saga.observability import logger

# Looked up along the exception's class hierarchy: the most specific entry wins.
STATUS_CODES: dict[type[OrderSagaError], grpc.StatusCode] = {
    InvalidOrder: grpc.StatusCode.INVALID_ARGUMENT,
    OrderNotFound: grpc.StatusCode.NOT_FOUND,
    IdempotencyConflict: grpc.StatusCode.ALREADY_EXISTS,
    NotAuthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    BusinessError: grpc.StatusCode.FAILED_PRECONDITION,  # UnknownProduct, OutOfStock, a wrong state
    TransientDependencyError: grpc.StatusCode.UNAVAILABLE,
    WorkflowUnavailable: grpc.StatusCode.UNAVAILABLE,
    ConfigurationError: grpc.StatusCode.INTERNAL,
}


def status_code_for(error: OrderSagaError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


# What a client reads when a dependency failed: the operators' detail (hosts, ports, ARNs, SQL) is
# logged, never sent. A business error's own message is the client's: it names only the request.
PUBLIC_MESSAGES: dict[type[OrderSagaError], str] = {
    DatabaseUnavailable: "the order database is briefly unavailable; retry shortly",
    CacheUnavailable: "the order cache is briefly unavailable; retry shortly",
    PaymentGatewayUnavailable: "the payment service is briefly unavailable; retry shortly",
    TransientDependencyError: "a service the order depends on is briefly unavailable; retry shortly",
    WorkflowUnavailable: "the order workflow is briefly unavailable; retry shortly",
    ConfigurationError: "the service is misconfigured",
}


def public_message(error: OrderSagaError) -> str:
    for cls in type(error).__mro__:
        if cls in PUBLIC_MESSAGES:
            logger.warning("dependency error", extra={"error": str(error), "type": type(error).__name__})
            return PUBLIC_MESSAGES[cls]
    return str(error)


def rich_status(error: Exception) -> grpc.Status:
    """A google.rpc.Status for the error: its code, a message, and the details a client can act on."""
    if not isinstance(error, OrderSagaError):
        logger.exception("unexpected error")
        status = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
        return grpc_status(status)
    code = status_code_for(error)
    message = public_message(error)
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in _details(error):
        status.details.add().Pack(detail)
    return grpc_status(status)


def grpc_status(status: status_pb2.Status) -> grpc.Status:
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


def _details(
    error: OrderSagaError,
) -> list[error_details_pb2.BadRequest | error_details_pb2.RetryInfo]:
    if isinstance(error, InvalidRequest):
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        ]
    if isinstance(error, RateLimited):
        return [error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=error.retry_after))]
    return []
