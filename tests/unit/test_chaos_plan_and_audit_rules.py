"""The chaos campaign's plan and the auditor's reading of executions, without any server."""

from typing import Any

from devstack.asl import load
from devstack.chaos_plan import AIMED, CANCEL_MOMENTS, GATEWAY_TROUBLE, INFRA_KINDS, make_plan
from devstack.faults import Fault
from order_ops.audit.invariants import FAILED_LEAVES, SUCCEEDED_LEAVES
from order_saga.functions import FUNCTIONS
from order_saga.manifest import STATE_MACHINES

EVERY_KIND = {
    *GATEWAY_TROUBLE,
    "business:good-card",
    "business:declined-card",
    "business:hot-product",
    "business:multi-line",
    "client:duplicate-create",
    "client:stop-execution",
    *(f"client:cancel-{moment}" for moment in CANCEL_MOMENTS),
    *(f"infra:{kind}" for kind in INFRA_KINDS),
    *(f"lambda-aimed:{kind}" for kind in AIMED),
}


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    assert make_plan(42, 150, 6) == make_plan(42, 150, 6)
    assert make_plan(42, 150, 6) != make_plan(43, 150, 6)


def test_every_plan_has_one_of_each_kind_and_faults_for_every_function() -> None:
    for seed in range(25):
        for orders in (12, 150, 1000):
            plan = make_plan(seed, orders, clients=4)
            assert set(plan.planned()) >= EVERY_KIND, (seed, orders)
            assert {event.fault["function"] for event in plan.faults} == {spec.name for spec in FUNCTIONS}
            assert {event.fault["kind"] for event in plan.faults} == {
                "error",
                "timeout",
                "duplicate",
                "delay",
            }
            for event in plan.faults:
                Fault(**event.fault)  # a valid fault for the invoker's plan
            assert all(0 < event.before_order < orders for event in plan.infra)
            # one client runs every infrastructure fault, so no two overlap
            assert {plan.lines[event.before_order].client for event in plan.infra} == {0}
            assert {line.client for line in plan.lines} == set(range(4))


def final_states(definition: dict[str, Any]) -> dict[str, str]:
    found = {}
    for name, state in definition["States"].items():
        if state["Type"] in {"Succeed", "Fail"}:
            found[name] = state["Type"]
        for branch in state.get("Branches", []):
            found |= final_states(branch)
    return found


def test_the_auditor_knows_every_end_of_both_state_machines() -> None:
    # A renamed or new Succeed/Fail state must be taught to the auditor (order_ops.audit.invariants).
    for spec in STATE_MACHINES:
        for state, kind in final_states(load(spec)).items():
            if kind == "Succeed":
                assert spec.name in SUCCEEDED_LEAVES, (spec.name, state)
            else:
                assert (spec.name, state) in FAILED_LEAVES, (spec.name, state)
