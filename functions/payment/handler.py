"""Payment service: ProcessPayment and its compensation RefundPayment."""

from pydantic import BaseModel

from order_saga.db import get_database
from order_saga.lambda_step import CompensationInput, StepInput, saga_step
from order_saga.payment_gateway import get_gateway
from order_saga.steps import payment


@saga_step(StepInput)
def process_payment(step: StepInput) -> BaseModel:
    return payment.process_payment(get_database(), get_gateway(), step.order_id)


@saga_step(CompensationInput, counts="Compensations")
def refund_payment(step: CompensationInput) -> BaseModel:
    return payment.refund_payment(get_database(), get_gateway(), step.order_id)
