"""Reconciliation service: ReconcilePayments, run by a schedule with `{"window_seconds": N}`, checks
the money of the orders created in the last N seconds against the payment gateway's ledger
(order_saga.reconciliation) and publishes MoneyViolations and OrdersReconciled."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from order_saga.db import get_database
from order_saga.events import parse
from order_saga.observability import logger, metrics, trace_handler
from order_saga.payment_gateway import get_gateway
from order_saga.reconciliation import reconcile
from order_saga.reconciliation.ledger import HttpLedger

DAY_SECONDS = 24 * 3600


class ReconcileWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_seconds: int = Field(DAY_SECONDS, gt=0)


@logger.inject_lambda_context(clear_state=True)
@trace_handler
@metrics.log_metrics
def reconcile_payments(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    window = parse(ReconcileWindow, event)
    outcome = reconcile.reconcile_payments(get_database(), HttpLedger(get_gateway()), window.window_seconds)
    metrics.add_metric(name=reconcile.ORDERS_RECONCILED, unit=MetricUnit.Count, value=outcome.orders)
    metrics.add_metric(name=reconcile.MONEY_VIOLATIONS, unit=MetricUnit.Count, value=outcome.violations)
    return outcome.as_json()
