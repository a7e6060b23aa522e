"""Order service: ConfirmOrder and the ends of the compensation paths."""

from pydantic import BaseModel

from order_saga.cache import get_redis
from order_saga.db import get_database
from order_saga.lambda_step import CompensationInput, StepInput, saga_step
from order_saga.steps import orders


@saga_step(StepInput, counts="OrdersConfirmed")
def confirm_order(step: StepInput) -> BaseModel:
    return orders.confirm_order(get_database(), get_redis(), step.order_id)


@saga_step(CompensationInput, counts="OrdersFailed")
def mark_order_failed(step: CompensationInput) -> BaseModel:
    return orders.mark_order_failed(get_database(), get_redis(), step.order_id, step.error)


@saga_step(CompensationInput, counts="OrdersCancelled")
def mark_order_cancelled(step: CompensationInput) -> BaseModel:
    return orders.mark_order_cancelled(get_database(), get_redis(), step.order_id)


@saga_step(CompensationInput, counts="CompensationFailures")
def mark_needs_attention(step: CompensationInput) -> BaseModel:
    return orders.mark_needs_attention(get_database(), get_redis(), step.order_id, step.error)
