"""Powertools Logger, Metrics and (when tracing is on) Tracer, configured once for every function
and the edge.

Service name, log level and metrics namespace come from Powertools' own environment variables
(POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL, POWERTOOLS_METRICS_NAMESPACE), which the
function definitions set; the defaults below keep a bare import usable in tests and scripts.

Powertools' Tracer imports the X-Ray SDK even when tracing is off, a sixth of a handler's
cold import. So `trace_handler` builds a Tracer only where Powertools would trace (in Lambda,
unless POWERTOOLS_TRACE_DISABLED), and elsewhere leaves the handler as it is.
"""

import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

METRICS_NAMESPACE = "OrderSaga"
SERVICE = "order-saga"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE)

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


def tracing_enabled() -> bool:
    """Powertools' rule: traced in Lambda (LAMBDA_TASK_ROOT), not under SAM local or Chalice, and
    not when POWERTOOLS_TRACE_DISABLED is true."""
    if resolve_truthy_env_var_choice(env=os.getenv("POWERTOOLS_TRACE_DISABLED", "false")):
        return False
    emulated = os.getenv("AWS_SAM_LOCAL") or os.getenv("AWS_CHALICE_CLI_MODE")
    return bool(os.getenv("LAMBDA_TASK_ROOT")) and not emulated


def trace_handler(handler: HandlerT) -> HandlerT:
    """The handler inside an X-Ray subsegment when tracing is on; the X-Ray SDK loads only then."""
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 - the X-Ray SDK, only when tracing

    return cast(HandlerT, Tracer(service=SERVICE).capture_lambda_handler(handler))
