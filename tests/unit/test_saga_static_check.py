"""A static check of the saga over both ASL files, and the step names every part shares.

The graph is walked as Step Functions runs it (Next, Default, Choices, Catch, and into Parallel
branches), so a renamed state, a Catch pointed elsewhere or a compensation left out of a branch
fails here before any execution does.
"""

import copy
import re
from typing import Any

import pytest

from devstack.asl import load
from order_saga.functions import FUNCTIONS
from order_saga.manifest import (
    COMPENSATIONS,
    ORDER_CANCELLATION,
    ORDER_SAGA,
    STATE_MACHINE_STEPS,
    STATE_MACHINES,
    StateMachine,
    Step,
)
from order_saga.migrate import MIGRATIONS_DIR

# What undoes each forward step; the pivot ConfirmOrder is never compensated once it committed,
# but a ConfirmOrder that failed leaves the payment and the reservation to undo.
UNDOES = {Step.PROCESS_PAYMENT: Step.REFUND_PAYMENT, Step.RESERVE_STOCK: Step.RELEASE_STOCK}
FORWARD = (Step.PROCESS_PAYMENT, Step.RESERVE_STOCK, Step.CONFIRM_ORDER)

MACHINES = pytest.mark.parametrize("machine", STATE_MACHINES, ids=lambda machine: machine.name)


def all_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state by name, those of Parallel branches included."""
    found = dict(definition["States"])
    for state in definition["States"].values():
        for branch in state.get("Branches", []):
            found |= all_states(branch)
    return found


def reachable(definition: dict[str, Any], start: str) -> set[str]:
    """The states an execution can pass through from `start`, into Parallel branches too."""
    states = all_states(definition)
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        todo += [state[key] for key in ("Next", "Default") if key in state]
        todo += [rule["Next"] for key in ("Catch", "Choices") for rule in state.get(key, [])]
        todo += [branch["StartAt"] for branch in state.get("Branches", [])]
    return seen


def task_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in all_states(definition).items() if state["Type"] == "Task"}


def forward_catch_misses(definition: dict[str, Any]) -> dict[Step, set[Step]]:
    """For each forward Task, the compensations its Catch cannot reach, of the steps done before
    it and of itself (a step that failed may have half happened: a charge whose answer was lost)."""
    states = definition["States"]
    misses: dict[Step, set[Step]] = {}
    for index, step in enumerate(FORWARD):
        owed = {UNDOES[done] for done in FORWARD[: index + 1] if done in UNDOES}
        for catch in states[step]["Catch"]:
            missing = owed - reachable(definition, catch["Next"])
            if missing:
                misses[step] = missing
    return misses


def test_every_forward_tasks_catch_reaches_the_compensation_of_every_step_before_it() -> None:
    definition = load(ORDER_SAGA)
    assert forward_catch_misses(definition) == {}


def test_the_check_finds_a_catch_that_skips_a_compensation() -> None:
    # Given the saga with ReserveStock's failures sent straight to marking the order failed
    broken = copy.deepcopy(load(ORDER_SAGA))
    broken["States"]["ReserveStock"]["Catch"][0]["Next"] = "MarkOrderFailed"
    # Then the check names the refund and the release it skips
    assert forward_catch_misses(broken) == {"ReserveStock": {"RefundPayment", "ReleaseStock"}}


@MACHINES
def test_every_task_has_a_timeout_and_a_retry(machine: StateMachine) -> None:
    for name, state in task_states(load(machine)).items():
        assert isinstance(state.get("TimeoutSeconds"), int), name
        assert state["TimeoutSeconds"] > 0, name
        assert state.get("Retry"), name


@MACHINES
def test_every_failed_compensation_ends_needs_attention_with_what_it_owes(machine: StateMachine) -> None:
    definition = load(machine)
    states = all_states(definition)
    # Every way a compensation can fail leads to the DLQ message, which carries the whole state
    # (the compensations' owed flags among it), and then to MarkNeedsAttention.
    compensating = reachable(definition, "Compensate")
    for step in COMPENSATIONS:
        assert step in compensating, step
        assert states[f"{step}Owed"]["Parameters"]["owed"] is True
    for name in (Step.MARK_ORDER_FAILED, Step.MARK_ORDER_CANCELLED):
        if name in states:
            assert {"CompensationFailed", "MarkNeedsAttention"} <= reachable(definition, name), name
    assert reachable(definition, "CompensationFailed") >= {"CompensationFailed", "MarkNeedsAttention"}
    assert states["CompensationFailed"]["Parameters"]["MessageBody"]["context.$"] == "$"
    outcome = states["CompensationOutcome"]
    assert outcome["Choices"][0]["Next"] == "CompensationFailed"


@MACHINES
def test_the_dlq_message_says_which_role_its_machine_plays(machine: StateMachine) -> None:
    body = load(machine)["States"]["CompensationFailed"]["Parameters"]["MessageBody"]
    assert body["machine_role"] == ("cancellation" if machine is ORDER_CANCELLATION else "saga")


def test_every_task_state_is_a_step_and_every_function_is_one() -> None:
    named = {name for machine in STATE_MACHINES for name in task_states(load(machine))}
    assert named <= set(Step), named - set(Step)
    assert {spec.name for spec in FUNCTIONS} <= set(Step)
    # Every step is used: by an ASL file, or as a function (the notifier, the watchdog)
    assert set(Step) == named | {spec.name for spec in FUNCTIONS}


def test_the_owed_compensations_column_lists_exactly_the_compensations() -> None:
    sql = "\n".join(path.read_text() for path in sorted(MIGRATIONS_DIR.glob("*.sql")))
    [members] = re.findall(r"owed_compensations SET\(([^)]*)\)", sql)
    assert [member.strip("' ") for member in members.split(",")] == list(COMPENSATIONS)


def test_the_steps_the_state_machines_invoke_are_listed_in_the_manifest() -> None:
    invoked = {
        name
        for machine in STATE_MACHINES
        for name, state in task_states(load(machine)).items()
        if state["Resource"] == "arn:aws:states:::lambda:invoke"
    }
    assert invoked == set(STATE_MACHINE_STEPS)
