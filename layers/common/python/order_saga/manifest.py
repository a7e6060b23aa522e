"""The deployment manifest: every name CDK, the local stack and the operator tools spell.

A resource deployed for environment `env` is named `OrderSaga-<env>-<Name>`; the local stack is
environment `local` and wears the same names, so what an operator tool finds locally it finds in
AWS. Nothing outside this module spells a resource name, a setting that carries one, a scope or a
step name.
"""

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

PROJECT = "OrderSaga"
LOCAL_ENVIRONMENT = "local"
ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9]{1,15}$")

STATE_MACHINE_DIR = Path(__file__).resolve().parents[4] / "statemachine"
# The state machine alias every execution starts through: the latest release (docs/deploy.md).
RELEASE_ALIAS = "live"
# The ASL files' `${Name}` placeholders: one `${<Step>FunctionArn}` per function, and the queues.
SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9]+)\}")


class Step(StrEnum):
    """The saga's steps: the same word in the ASL (its Task states), FUNCTIONS, saga_log, the
    fault plan and the console. A step run by a function is that function's name."""

    PROCESS_PAYMENT = "ProcessPayment"
    RESERVE_STOCK = "ReserveStock"
    CONFIRM_ORDER = "ConfirmOrder"
    REFUND_PAYMENT = "RefundPayment"
    RELEASE_STOCK = "ReleaseStock"
    MARK_ORDER_FAILED = "MarkOrderFailed"
    MARK_ORDER_CANCELLED = "MarkOrderCancelled"
    MARK_NEEDS_ATTENTION = "MarkNeedsAttention"
    SEND_NOTIFICATION = "SendNotification"
    SAGA_WATCHDOG = "SagaWatchdog"
    RECONCILE_PAYMENTS = "ReconcilePayments"
    # Task states of the ASL that send to a queue rather than call a function.
    SEND_ORDER_CONFIRMATION = "SendOrderConfirmation"
    SEND_FAILURE_ALERT = "SendFailureAlert"
    SEND_CANCELLATION_NOTICE = "SendCancellationNotice"
    COMPENSATION_FAILED = "CompensationFailed"


# The compensations, in the order a re-drive runs them (also the members of the
# `orders.owed_compensations` SET column).
COMPENSATIONS = (Step.REFUND_PAYMENT, Step.RELEASE_STOCK)
# The steps the state machines invoke (a unit test checks them against the ASL files' Lambda tasks).
STATE_MACHINE_STEPS = (
    Step.PROCESS_PAYMENT,
    Step.RESERVE_STOCK,
    Step.CONFIRM_ORDER,
    *COMPENSATIONS,
    Step.MARK_ORDER_FAILED,
    Step.MARK_ORDER_CANCELLED,
    Step.MARK_NEEDS_ATTENTION,
)
# What a re-drive from the compensation DLQ may invoke: the compensations, then the Mark step.
REDRIVEN_STEPS = (*COMPENSATIONS, Step.MARK_ORDER_FAILED, Step.MARK_ORDER_CANCELLED)


class Setting(StrEnum):
    """Environment variables that carry a deployed resource's address or a deployment choice
    (secrets by ARN only, never their values)."""

    ORDER_SAGA_STATE_MACHINE_ARN = "ORDER_SAGA_STATE_MACHINE_ARN"
    ORDER_CANCELLATION_STATE_MACHINE_ARN = "ORDER_CANCELLATION_STATE_MACHINE_ARN"
    NOTIFICATION_QUEUE_URL = "NOTIFICATION_QUEUE_URL"
    NOTIFICATION_DLQ_URL = "NOTIFICATION_DLQ_URL"
    COMPENSATION_DLQ_URL = "COMPENSATION_DLQ_URL"
    MYSQL_HOST = "MYSQL_HOST"
    MYSQL_PORT = "MYSQL_PORT"
    MYSQL_DATABASE = "MYSQL_DATABASE"
    MYSQL_SECRET_ARN = "MYSQL_SECRET_ARN"  # noqa: S105 - a variable's name, not a secret
    MYSQL_TLS = "MYSQL_TLS"
    REDIS_URL = "REDIS_URL"
    REDIS_AUTH_SECRET_ARN = "REDIS_AUTH_SECRET_ARN"  # noqa: S105 - a variable's name, not a secret
    PAYMENT_GATEWAY_URL = "PAYMENT_GATEWAY_URL"
    PAYMENT_GATEWAY_SECRET_ARN = "PAYMENT_GATEWAY_SECRET_ARN"  # noqa: S105 - a variable's name, not a secret
    EMAIL_SENDER = "EMAIL_SENDER"
    DEPLOYMENT_ENVIRONMENT = "ORDER_SAGA_ENVIRONMENT"
    # The edge's own.
    JWT_ISSUER = "JWT_ISSUER"
    JWT_JWKS_URL = "JWT_JWKS_URL"
    GRPC_PORT = "GRPC_PORT"
    METRICS_PORT = "METRICS_PORT"
    TLS_CERT_FILE = "TLS_CERT_FILE"
    TLS_KEY_FILE = "TLS_KEY_FILE"
    TLS_CLIENT_CA_FILE = "TLS_CLIENT_CA_FILE"
    RATE_LIMIT_PER_MINUTE = "RATE_LIMIT_PER_MINUTE"
    RATE_LIMIT_PER_CLIENT_PER_MINUTE = "RATE_LIMIT_PER_CLIENT_PER_MINUTE"


@dataclass(frozen=True)
class StateMachine:
    name: str  # its role, and the last part of its deployed name
    file: str  # under statemachine/
    setting: Setting  # the variable that carries its ARN

    @property
    def path(self) -> Path:
        return STATE_MACHINE_DIR / self.file


ORDER_SAGA = StateMachine("OrderSaga", "order_saga.asl.json", Setting.ORDER_SAGA_STATE_MACHINE_ARN)
ORDER_CANCELLATION = StateMachine(
    "OrderCancellation", "order_cancellation.asl.json", Setting.ORDER_CANCELLATION_STATE_MACHINE_ARN
)
STATE_MACHINES = (ORDER_SAGA, ORDER_CANCELLATION)


@dataclass(frozen=True)
class Queue:
    name: str  # the last part of its deployed name
    setting: Setting
    substitution: str | None = None  # the ASL's `${...}` for its URL, when a state machine sends to it


NOTIFICATION_QUEUE = Queue("Notifications", Setting.NOTIFICATION_QUEUE_URL, "NotificationQueueUrl")
NOTIFICATION_DLQ = Queue("NotificationDlq", Setting.NOTIFICATION_DLQ_URL)
COMPENSATION_DLQ = Queue("CompensationDlq", Setting.COMPENSATION_DLQ_URL, "CompensationDlqUrl")
QUEUES = (NOTIFICATION_QUEUE, NOTIFICATION_DLQ, COMPENSATION_DLQ)

# OAuth scopes, as the edge checks them and as Cognito's resource server prefixes them.
RESOURCE_SERVER = "orders-api"
SCOPE_READ = "orders:read"
SCOPE_WRITE = "orders:write"
# A trusted backend acting for the customer it names in the `x-customer-id` metadata.
SCOPE_ACT_AS = "orders:act-as"


def arn_substitution(function_name: str) -> str:
    """The `${...}` under which the state machines name a function's ARN."""
    return f"{function_name}FunctionArn"


def resource_name(environment: str, name: str) -> str:
    """The deployed name of resource `name` in `environment`: `OrderSaga-<env>-<Name>`."""
    if not ENVIRONMENT_NAME.match(environment):
        raise ValueError(f"environment names are 2 to 16 lowercase letters and digits: {environment!r}")
    return f"{PROJECT}-{environment}-{name}"


def local_name(environment: str, deployed: str) -> str | None:
    """The `Name` of a deployed `OrderSaga-<env>-<Name>`, or None when it is not one of `environment`'s."""
    prefix = resource_name(environment, "")
    return deployed.removeprefix(prefix) if deployed.startswith(prefix) else None


def secret_name(environment: str, name: str) -> str:
    """Secrets are paths: `order-saga/<env>/<name>` (the edge's TLS PEMs, the local database login)."""
    resource_name(environment, "")  # validates the environment
    return f"order-saga/{environment}/{name}"


def deployment_environment() -> str:
    """The environment an operator tool works on: `ORDER_SAGA_ENVIRONMENT`, `local` by default."""
    return os.environ.get(Setting.DEPLOYMENT_ENVIRONMENT, LOCAL_ENVIRONMENT)


def state_machine_named(deployed: str) -> StateMachine | None:
    """The state machine a deployed name `OrderSaga-<env>-<Name>` is, in whatever environment."""
    for machine in STATE_MACHINES:
        head, _, env = deployed.removesuffix(f"-{machine.name}").partition("-")
        if deployed.endswith(f"-{machine.name}") and head == PROJECT and ENVIRONMENT_NAME.match(env):
            return machine
    return None
