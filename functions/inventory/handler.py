"""Inventory service: ReserveStock and its compensation ReleaseStock."""

from pydantic import BaseModel

from order_saga.cache import get_redis
from order_saga.db import get_database
from order_saga.lambda_step import CompensationInput, StepInput, saga_step
from order_saga.steps import inventory


@saga_step(StepInput)
def reserve_stock(step: StepInput) -> BaseModel:
    return inventory.reserve_stock(get_database(), get_redis(), step.order_id)


@saga_step(CompensationInput, counts="Compensations")
def release_stock(step: CompensationInput) -> BaseModel:
    return inventory.release_stock(get_database(), get_redis(), step.order_id)
