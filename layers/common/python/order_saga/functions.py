"""The one description of every Lambda function: the CDK stacks and the local stack both read it.

A function's `name` is the saga step it performs (`manifest.Step`), the same word in the seed,
the state machine (`${ProcessPaymentFunctionArn}`), the console and the fault plan; deployed, it is
`OrderSaga-<env>-<name>` (`manifest.resource_name`). Its code is the folder
`functions/<service>/` and its entry point `handler` is `module.function` inside that folder,
exactly as the Lambda runtime resolves it.
"""

from dataclasses import dataclass, field
from enum import StrEnum

from order_saga.manifest import PROJECT, QUEUES, Step, arn_substitution, resource_name

COMPUTING_MB = 512  # steps whose time is their own CPU between short MySQL and Redis round trips
WAITING_MB = 256  # steps whose time is a remote service's answer: the payment gateway, SES, Step Functions


class Needs(StrEnum):
    """What a function reaches besides its own logs: drives its settings and its IAM policy."""

    DATABASE = "database"  # MySQL through RDS Proxy (credentials secret)
    CACHE = "cache"  # Redis: availability cache, idempotency records, status feed
    PAYMENT_GATEWAY = "payment-gateway"  # the gateway's URL and API key secret
    EMAIL = "email"  # SES SendEmail from the sender identity
    NOTIFICATION_QUEUE = "notification-queue"  # consumes the notification queue (event source)
    SAGA_CONTROL = "saga-control"  # reads the state machines' executions, sends notices and DLQ messages


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # a Step's value
    service: str
    handler: str
    description: str
    needs: frozenset[Needs]
    timeout_seconds: int = 10
    # Lambda's CPU share grows with memory, so a step that mostly computes costs about the same
    # GB-seconds at any size, and one that mostly waits costs in proportion (docs/decisions.md).
    memory_mb: int = COMPUTING_MB
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def code_dir(self) -> str:
        """The function's code folder, relative to the repository root."""
        return f"functions/{self.service}"

    @property
    def arn_substitution(self) -> str:
        """The `${...}` name under which the state machines refer to this function's ARN."""
        return arn_substitution(self.name)

    def deployed_name(self, environment: str) -> str:
        """The function's name in `environment`: `OrderSaga-<env>-<name>`."""
        return resource_name(environment, self.name)

    @property
    def all_environment(self) -> dict[str, str]:
        """Environment common to every function, then the function's own."""
        return {"POWERTOOLS_SERVICE_NAME": self.service, "POWERTOOLS_METRICS_NAMESPACE": PROJECT} | (
            self.environment
        )


_STEP = frozenset({Needs.DATABASE, Needs.CACHE})
_PAYMENT = _STEP | {Needs.PAYMENT_GATEWAY}

FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        Step.PROCESS_PAYMENT,
        "payment",
        "handler.process_payment",
        "Charge the order's total",
        _PAYMENT,
        20,
        WAITING_MB,
    ),
    FunctionSpec(
        Step.REFUND_PAYMENT,
        "payment",
        "handler.refund_payment",
        "Refund the charge (compensation)",
        _PAYMENT,
        20,
        WAITING_MB,
    ),
    FunctionSpec(
        Step.RESERVE_STOCK, "inventory", "handler.reserve_stock", "Reserve every line's units", _STEP
    ),
    FunctionSpec(
        Step.RELEASE_STOCK,
        "inventory",
        "handler.release_stock",
        "Release the reservation (compensation)",
        _STEP,
    ),
    FunctionSpec(
        Step.CONFIRM_ORDER, "orders", "handler.confirm_order", "Confirm the order, commit its stock", _STEP
    ),
    FunctionSpec(
        Step.MARK_ORDER_FAILED, "orders", "handler.mark_order_failed", "End a compensated order FAILED", _STEP
    ),
    FunctionSpec(
        Step.MARK_ORDER_CANCELLED,
        "orders",
        "handler.mark_order_cancelled",
        "End a compensated order CANCELLED",
        _STEP,
    ),
    FunctionSpec(
        Step.MARK_NEEDS_ATTENTION,
        "orders",
        "handler.mark_needs_attention",
        "Flag a failed compensation",
        _STEP,
    ),
    FunctionSpec(
        Step.SEND_NOTIFICATION,
        "notification",
        "handler.send_notification",
        "Send the e-mails the saga queued (SQS consumer)",
        frozenset({Needs.DATABASE, Needs.CACHE, Needs.EMAIL, Needs.NOTIFICATION_QUEUE}),
        timeout_seconds=30,
        memory_mb=WAITING_MB,
    ),
    FunctionSpec(
        Step.SAGA_WATCHDOG,
        "watchdog",
        "handler.settle_execution",
        "Finish or flag the order of an execution that failed, timed out or was aborted",
        _PAYMENT | {Needs.SAGA_CONTROL},
        timeout_seconds=60,
        memory_mb=WAITING_MB,
    ),
    FunctionSpec(
        Step.RECONCILE_PAYMENTS,
        "reconciliation",
        "handler.reconcile_payments",
        "Check the last day's settled orders against the payment gateway's ledger (scheduled)",
        frozenset({Needs.DATABASE, Needs.PAYMENT_GATEWAY}),
        timeout_seconds=300,
    ),
)


def function(name: str) -> FunctionSpec:
    """The definition of the function called `name` (KeyError for an unknown one)."""
    return {spec.name: spec for spec in FUNCTIONS}[name]


def substitution_names() -> set[str]:
    """Every `${...}` the ASL files may use: each function's ARN and the queues' URLs."""
    return {spec.arn_substitution for spec in FUNCTIONS} | {q.substitution for q in QUEUES if q.substitution}
