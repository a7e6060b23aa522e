"""Saga watchdog: EventBridge invokes it for every OrderSaga or OrderCancellation execution that
fails, times out or is aborted ("Step Functions Execution Status Change"). The execution's name
is the order_id; the watchdog reads the execution's status itself and ends the order truthfully
or flags it (order_saga.watchdog). A schedule also invokes it with `{"sweep_older_than_seconds":
N}`: the same pass as the local reconciler's, for what no event reports (a charge that landed
after its compensation and whose refund failed, an event that was lost, a saga whose
StartExecution was refused: it is started)."""

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from order_saga.cache import get_redis
from order_saga.db import get_database
from order_saga.events import parse
from order_saga.models import OrderId
from order_saga.observability import logger, metrics, trace_handler
from order_saga.settings import get_settings
from order_saga.watchdog import SagaWatchdog, WatchdogAction, create_watchdog

# The metric each action publishes, once per order acted on (the cost estimate counts them).
ACTION_METRICS: dict[WatchdogAction, str] = {
    "started": "WatchdogStarted",
    "settled": "WatchdogSettled",
    "flagged": "WatchdogFlagged",
    "notified": "WatchdogNotified",
}


class ExecutionDetail(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: OrderId
    status: str


class ExecutionStatusChange(BaseModel):
    """The part of EventBridge's "Step Functions Execution Status Change" event the watchdog reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    detail: ExecutionDetail


class Sweep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep_older_than_seconds: float = Field(gt=0)


@lru_cache(maxsize=1)
def get_watchdog() -> SagaWatchdog:
    return create_watchdog(get_settings(), get_database(), get_redis())


@logger.inject_lambda_context(correlation_id_path="detail.name", clear_state=True)
@trace_handler
@metrics.log_metrics
def settle_execution(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    if isinstance(event, dict) and "sweep_older_than_seconds" in event:
        outcomes = get_watchdog().settle_stuck(parse(Sweep, event).sweep_older_than_seconds)
    else:
        outcomes = [get_watchdog().settle(parse(ExecutionStatusChange, event).detail.name)]
    acted = [outcome for outcome in outcomes if outcome.action != "none"]
    for outcome in acted:
        metrics.add_metric(name=ACTION_METRICS[outcome.action], unit=MetricUnit.Count, value=1)
    return {"settled": [outcome.model_dump(mode="json") for outcome in acted]}
