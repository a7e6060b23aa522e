"""What every saga-step Lambda handler shares, so each handler is one line of domain call.

`saga_step` wires Powertools (structured logs with the order_id as correlation id, X-Ray, EMF
metrics), parses the event with the step's pydantic model (bad input is one InvalidOrder error
that names the fields, before anything is read or written), and puts the step's remembered answer
in Redis in front of the step as a fast path (order_saga.fast_path). The database stays the
guard: when Redis is down, or the same step is running right now elsewhere, the step runs against
MySQL, whose row lock and state checks make the repeat harmless.
"""

import time
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from .cache import get_redis
from .events import parse
from .fast_path import StepResults, result_key
from .models import OrderId
from .observability import logger, metrics, trace_handler
from .settings import get_settings
from .steps.orders import StepError

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class StepInput(BaseModel):
    """What a forward step needs: the order. Other keys of the state (earlier results) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    order_id: OrderId


class CompensationInput(StepInput):
    """A compensation or end-of-path step also gets the error the Catch caught, when there was one."""

    error: StepError | None = None


StepInputT = TypeVar("StepInputT", bound=StepInput)


@lru_cache(maxsize=1)
def _step_results() -> StepResults:
    return StepResults(get_redis(), get_settings().idempotency_ttl_seconds)


def _with_fast_path(
    step: Callable[[StepInputT], BaseModel], step_input: StepInputT, context: LambdaContext
) -> dict[str, Any]:
    return _step_results().answer(
        result_key(step.__name__, step_input.order_id),
        lambda: step(step_input).model_dump(mode="json"),
        # A claim then expires with the invocation's time, so a crash does not block retries.
        claim_ms=context.get_remaining_time_in_millis(),
    )


def saga_step(
    model: type[StepInputT], *, counts: str | None = None
) -> Callable[[Callable[[StepInputT], BaseModel]], Handler]:
    """Make a Lambda handler of `step`; `counts` names a metric added once per successful call."""

    def decorate(step: Callable[[StepInputT], BaseModel]) -> Handler:
        @wraps(step)
        @logger.inject_lambda_context(correlation_id_path="order_id", clear_state=True)
        @trace_handler
        @metrics.log_metrics
        def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
            started = time.perf_counter()
            metrics.add_dimension(name="Step", value=step.__name__)
            try:
                result = _with_fast_path(step, parse(model, event), context)
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                metrics.add_metric(name="StepLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
            if counts:
                metrics.add_metric(name=counts, unit=MetricUnit.Count, value=1)
            return result

        return handler

    return decorate
