"""What one order does in AWS, by the path it takes, read from the state machines' definitions.

A path is a walk through an ASL definition: from `StartAt`, each state's `Next`, where the named
Task fails its `Catch`, and at each Choice its `Default` unless the path names the branch
taken. Parallel states walk every branch. From the states entered follow what Standard workflows
bill (a transition per state entered), the functions invoked (`lambda:invoke` Tasks), the notices
queued for the notifier (`sqs:sendMessage` to the notification queue) and whether the execution
ends FAILED (a Fail state), which the watchdog's EventBridge rule hands to the watchdog.

The history events follow from the states as Step Functions records them: a Task enters,
schedules, starts, succeeds or fails and exits (5 events), a Parallel state 4, a Choice, Pass or
Succeed state 2, a Fail state 1, and the execution starts and ends (2).
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from order_saga import manifest

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SQS_SEND = "arn:aws:states:::sqs:sendMessage"
NOTIFICATION_QUEUE = f"${{{manifest.NOTIFICATION_QUEUE.substitution}}}"
EVENTS_PER_STATE = {"Task": 5, "Parallel": 4, "Choice": 2, "Pass": 2, "Succeed": 2, "Fail": 1, "Wait": 2}
EXECUTION_EVENTS = 2  # started, and succeeded or failed


class UnknownPath(ValueError):
    """A path names a state the definition does not have, or walks into a state it cannot."""


@dataclass(frozen=True)
class Run:
    """One execution of a state machine along a path."""

    machine: str  # manifest.StateMachine.name
    fails_at: str | None = None  # the Task whose Catch the path takes
    choices: Mapping[str, str] = field(default_factory=dict)  # Choice state -> the state it goes to


@dataclass(frozen=True)
class OrderPath:
    name: str
    share: float  # of the orders placed
    runs: tuple[Run, ...]
    cancelled: bool = False  # the customer asked for it: one more RPC (CancelOrder)


@dataclass(frozen=True)
class Entered:
    name: str
    state: dict[str, Any]
    failed: bool  # the Task failed here (and the path took its Catch)
    after_error: bool  # the execution caught an error here or before: the state carries it


@dataclass(frozen=True)
class Execution:
    """What one run did: its states entered, in order."""

    states: tuple[Entered, ...]

    @property
    def transitions(self) -> int:
        return len(self.states)

    @property
    def invocations(self) -> int:
        return sum(1 for s in self.states if s.state.get("Resource") == LAMBDA_INVOKE)

    @property
    def notices(self) -> int:
        return sum(
            1
            for s in self.states
            if s.state.get("Resource") == SQS_SEND
            and s.state.get("Parameters", {}).get("QueueUrl") == NOTIFICATION_QUEUE
        )

    @property
    def failed(self) -> bool:
        return bool(self.states[-1].state["Type"] == "Fail")

    def events(self) -> Iterator[tuple[int, bool]]:
        """(history events, recorded after an error was caught) per state entered, then the
        execution's own start and end."""
        yield 1, False
        for s in self.states:
            yield EVENTS_PER_STATE[s.state["Type"]], s.after_error
        yield 1, self.failed

    @property
    def error_events(self) -> int:
        """Events a log level of ERROR records: each failed Task, Fail state and failed execution."""
        return sum(1 for s in self.states if s.failed or s.state["Type"] == "Fail") + int(self.failed)


def walk(states: dict[str, Any], start: str, run: Run, after_error: bool = False) -> list[Entered]:
    """The states entered from `start` to the end of this (sub)machine."""
    entered: list[Entered] = []
    name: str | None = start
    while name is not None:
        if name not in states:
            raise UnknownPath(f"{run.machine} has no state {name}")
        state = states[name]
        kind = state["Type"]
        fails = name == run.fails_at
        if fails and not state.get("Catch"):
            raise UnknownPath(f"{run.machine}.{name} has no Catch for the path to take")
        after_error = after_error or fails
        entered.append(Entered(name, state, fails, after_error))
        if kind == "Parallel":
            for branch in state["Branches"]:
                entered += walk(branch["States"], branch["StartAt"], run, after_error)
        if kind in ("Succeed", "Fail") or state.get("End"):
            return entered
        if fails:
            name = state["Catch"][0]["Next"]
        elif kind == "Choice":
            name = run.choices.get(name, state.get("Default"))
        else:
            name = state["Next"]
    raise UnknownPath(f"{run.machine}: a Choice with no Default and no branch named by the path")


def execute(definitions: Mapping[str, dict[str, Any]], run: Run) -> Execution:
    definition = definitions[run.machine]
    execution = Execution(tuple(walk(definition["States"], definition["StartAt"], run)))
    named = {s.name for s in execution.states}
    for state in ([run.fails_at] if run.fails_at else []) + list(run.choices):
        if state not in named:
            raise UnknownPath(f"{run.machine} never enters {state} on this path")
    return execution


ORDER_SAGA = manifest.ORDER_SAGA.name
ORDER_CANCELLATION = manifest.ORDER_CANCELLATION.name
CANCELLED = {"CompensationOutcome": "MarkOrderCancelled"}
# The orders placed, by outcome: an assumption of the estimate (docs/deploy.md, "What it costs").
PATHS = (
    OrderPath("confirmed", 0.90, (Run(ORDER_SAGA),)),
    OrderPath("payment declined", 0.05, (Run(ORDER_SAGA, "ProcessPayment"),)),
    OrderPath("out of stock", 0.02, (Run(ORDER_SAGA, "ReserveStock"),)),
    OrderPath("cancelled while pending", 0.01, (Run(ORDER_SAGA, "ConfirmOrder", CANCELLED),), cancelled=True),
    OrderPath("cancelled when confirmed", 0.02, (Run(ORDER_SAGA), Run(ORDER_CANCELLATION)), cancelled=True),
)


def repository_definitions() -> dict[str, dict[str, Any]]:
    """The definitions as the repository holds them (statemachine/*.asl.json)."""
    return {machine.name: json.loads(machine.path.read_text()) for machine in manifest.STATE_MACHINES}


def notices_per_order(definitions: Mapping[str, dict[str, Any]]) -> float:
    """The e-mails an order placed sends, on average over PATHS."""
    return sum(path.share * sum(execute(definitions, run).notices for run in path.runs) for path in PATHS)
