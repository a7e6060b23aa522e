"""The state machines' ASL files with their `${Substitutions}` filled in, as the local stack
creates them in moto. CDK passes the same values through DefinitionSubstitutions; both take the
names from `order_saga.manifest`."""

import json
from typing import Any

from order_saga.manifest import SUBSTITUTION, StateMachine


def substitutions_used(text: str) -> set[str]:
    return set(SUBSTITUTION.findall(text))


def render(machine: StateMachine, values: dict[str, str]) -> str:
    """The definition with every `${Name}` replaced, as Step Functions receives it from CloudFormation."""
    text = machine.path.read_text()
    missing = substitutions_used(text) - values.keys()
    if missing:
        raise KeyError(f"{machine.file} uses substitutions without a value: {', '.join(sorted(missing))}")
    return SUBSTITUTION.sub(lambda match: values[match.group(1)], text)


def load(machine: StateMachine) -> dict[str, Any]:
    """The definition as written (substitutions left in place)."""
    definition: dict[str, Any] = json.loads(machine.path.read_text())
    return definition
