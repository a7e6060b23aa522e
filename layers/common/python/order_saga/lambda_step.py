"""What every saga-step Lambda handler shares, so each handler is one line of domain call.

`saga_step` wires Powertools (structured logs with the order_id as correlation id, X-Ray, EMF
metrics), parses the event with the step's pydantic model (bad input is one InvalidOrder error
that names the fields, before anything is read or written), and puts Powertools idempotency on
Redis in front of the step as a fast path. The database stays the guard: when Redis is down, or
the same step is running right now elsewhere, the step runs against MySQL, whose row lock and
state checks make the repeat harmless.
"""

import time
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.cache import CachePersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, ValidationError

from .cache import get_redis
from .errors import InvalidOrder
from .models import OrderId
from .observability import logger, metrics, trace_handler
from .settings import get_settings
from .steps.orders import StepError

InputT = TypeVar("InputT", bound=BaseModel)
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class StepInput(BaseModel):
    """What a forward step needs: the order. Other keys of the state (earlier results) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    order_id: OrderId


class CompensationInput(StepInput):
    """A compensation or end-of-path step also gets the error the Catch caught, when there was one."""

    error: StepError | None = None


def parse(model: type[InputT], event: Any) -> InputT:
    """The event as `model`; an invalid one is an InvalidOrder naming every bad field."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'event'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidOrder(f"invalid {model.__name__}: {problems}") from None


@lru_cache(maxsize=1)
def _idempotency_store() -> CachePersistenceLayer:
    return CachePersistenceLayer(client=get_redis())  # type: ignore[arg-type]  # redis-py's stubs are wider


def _with_fast_path(
    step: Callable[[InputT], BaseModel], step_input: InputT, context: LambdaContext
) -> dict[str, Any]:
    def run(step_input: InputT) -> dict[str, Any]:
        return step(step_input).model_dump(mode="json")

    config = IdempotencyConfig(
        event_key_jmespath="order_id", expires_after_seconds=get_settings().idempotency_ttl_seconds
    )
    # An in-progress record then expires with the invocation's time, so a crash does not block retries.
    config.register_lambda_context(context)
    remembered = idempotent_function(
        data_keyword_argument="step_input",
        persistence_store=_idempotency_store(),
        config=config,
        key_prefix=f"order-saga:{step.__name__}",  # one record per step and order
    )(run)
    try:
        return dict(remembered(step_input=step_input))
    except (IdempotencyAlreadyInProgressError, IdempotencyPersistenceLayerError) as exc:
        logger.info("idempotency fast path unavailable; MySQL decides", extra={"reason": type(exc).__name__})
        return run(step_input)


def saga_step(
    model: type[InputT], *, counts: str | None = None
) -> Callable[[Callable[[InputT], BaseModel]], Handler]:
    """Make a Lambda handler of `step`; `counts` names a metric added once per successful call."""

    def decorate(step: Callable[[InputT], BaseModel]) -> Handler:
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
