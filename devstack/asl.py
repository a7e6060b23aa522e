"""The state machines' ASL files and their `${Substitutions}`, as CDK and the local stack use them.

The files under `statemachine/` are deployed unchanged: CDK passes the values through the state
machine's DefinitionSubstitutions, the local stack replaces them itself before creating the state
machines in moto. Both take the names from here and from `order_saga.functions.FUNCTIONS`.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from order_saga.functions import FUNCTIONS

from .paths import REPO_ROOT

STATEMACHINE_DIR = REPO_ROOT / "statemachine"
SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9]+)\}")

NOTIFICATION_QUEUE_URL = "NotificationQueueUrl"
COMPENSATION_DLQ_URL = "CompensationDlqUrl"


@dataclass(frozen=True)
class StateMachineSpec:
    name: str  # the state machine's name, in the console and in ARNs
    file: str  # under statemachine/
    env_key: str  # the setting that names its ARN (.devstack/env, the edge's environment)

    @property
    def path(self) -> Path:
        return STATEMACHINE_DIR / self.file


STATE_MACHINES: tuple[StateMachineSpec, ...] = (
    StateMachineSpec("OrderSaga", "order_saga.asl.json", "ORDER_SAGA_STATE_MACHINE_ARN"),
    StateMachineSpec(
        "OrderCancellation", "order_cancellation.asl.json", "ORDER_CANCELLATION_STATE_MACHINE_ARN"
    ),
)


def substitution_names() -> set[str]:
    """Every `${...}` name the ASL files may use."""
    return {spec.arn_substitution for spec in FUNCTIONS} | {NOTIFICATION_QUEUE_URL, COMPENSATION_DLQ_URL}


def substitutions_used(text: str) -> set[str]:
    return set(SUBSTITUTION.findall(text))


def render(spec: StateMachineSpec, values: dict[str, str]) -> str:
    """The definition with every `${Name}` replaced, as Step Functions receives it from CloudFormation."""
    text = spec.path.read_text()
    missing = substitutions_used(text) - values.keys()
    if missing:
        raise KeyError(f"{spec.file} uses substitutions without a value: {', '.join(sorted(missing))}")
    return SUBSTITUTION.sub(lambda match: values[match.group(1)], text)


def load(spec: StateMachineSpec) -> dict[str, Any]:
    """The definition as written (substitutions left in place)."""
    definition: dict[str, Any] = json.loads(spec.path.read_text())
    return definition
