"""The console draws any state machine from its ASL: every state and edge, nested branches, and
what an execution did in each state (failed, compensated, retried, running)."""

from datetime import UTC, datetime, timedelta

import pytest

from devstack.asl import load
from devstack.console import graph
from devstack.console.graph import END, START, Edge, Visit
from order_ops.executions import ExecutionPath, StateVisit
from order_saga.manifest import STATE_MACHINES
from order_saga.manifest import StateMachine as StateMachineSpec

T0 = datetime(2026, 11, 24, tzinfo=UTC)

# A saga whose compensations run side by side (a Parallel), with a Choice, a Map and a Pass.
PARALLEL_SAGA = {
    "StartAt": "Charge",
    "States": {
        "Charge": {
            "Type": "Task",
            "Next": "Split",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Undo"}],
        },
        "Split": {
            "Type": "Map",
            "ItemProcessor": {"StartAt": "Pack", "States": {"Pack": {"Type": "Pass", "End": True}}},
            "Next": "Decide",
        },
        "Decide": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Done"}],
            "Default": "Undo",
        },
        "Undo": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Refund", "States": {"Refund": {"Type": "Task", "End": True}}},
                {"StartAt": "Release", "States": {"Release": {"Type": "Task", "End": True}}},
            ],
            "Next": "Failed",
        },
        "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "OrderFailed"},
    },
}


def visit(name: str, at: int, *, attempts: int = 1, errors: int = 0, done: bool = True) -> StateVisit:
    entered = T0 + timedelta(seconds=at)
    return StateVisit(
        name, entered, entered + timedelta(seconds=1) if done else None, attempts, ["Boom: no"] * errors
    )


def path(status: str, *visits: StateVisit) -> ExecutionPath:
    return ExecutionPath("o", "Saga", "arn:o", status, T0, None, list(visits))


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda spec: spec.name)
def test_every_state_and_transition_of_the_real_state_machines_is_drawn(spec: StateMachineSpec) -> None:
    definition = load(spec)
    drawn = graph.build_graph(definition)
    assert set(definition["States"]) <= drawn.types.keys()
    edges = {(e.source, e.target) for e in drawn.edges}
    for name, state in definition["States"].items():
        # A Parallel (or Map) leaves through the join of its branches; its Catch from the state
        leaving = f"{name}{graph.JOIN_SUFFIX}" if state["Type"] in {"Parallel", "Map"} else name
        targets = [(leaving, state.get("Next")), (name, state.get("Default"))]
        targets += [(name, rule["Next"]) for rule in state.get("Choices", []) + state.get("Catch", [])]
        assert all(edge in edges for edge in targets if edge[1]), name


def test_nested_branches_become_clusters_joined_before_the_next_state() -> None:
    drawn = graph.build_graph(PARALLEL_SAGA)
    assert drawn.clusters["Undo"] == ["Refund", "Release", "Undo (end)"]
    assert drawn.clusters["Split"] == ["Pack", "Split (end)"]
    assert Edge("Undo", "Refund", "branch") in drawn.edges
    assert Edge("Release", "Undo (end)") in drawn.edges
    assert Edge("Undo (end)", "Failed") in drawn.edges
    assert Edge("Charge", "Undo", "States.ALL", catch=True) in drawn.edges
    assert Edge("Decide", "Done", "$.ok BooleanEquals true") in drawn.edges
    assert Edge("Decide", "Undo", "default") in drawn.edges
    assert Edge("Done", END) in drawn.edges
    assert Edge(START, "Charge") in drawn.edges


def test_a_caught_failure_colours_the_compensation_path_and_its_catch_edge() -> None:
    drawn = graph.build_graph(PARALLEL_SAGA)
    # Refund and Release interleave, as branches do in a history
    states, taken = graph.classify(
        drawn,
        path(
            "FAILED",
            visit("Charge", 0, errors=1),
            visit("Undo", 1),
            visit("Refund", 2),
            visit("Release", 2),
            visit("Failed", 3, attempts=0, done=False),
        ),
    )
    assert states["Charge"] is Visit.FAILED
    assert states["Undo"] is states["Refund"] is states["Release"] is Visit.COMPENSATION
    assert states["Failed"] is Visit.FAILED
    assert states["Split"] is states["Done"] is Visit.NOT_VISITED
    assert Edge("Charge", "Undo", "States.ALL", catch=True) in taken
    assert {Edge("Undo", "Refund", "branch"), Edge("Undo", "Release", "branch")} <= taken
    assert {Edge("Release", "Undo (end)"), Edge("Undo (end)", "Failed"), Edge("Failed", END)} <= taken


def test_a_parallel_left_through_its_catch_failed_even_with_no_failed_task_of_its_own() -> None:
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}],
                "End": True,
            },
            "Recover": {"Type": "Pass", "End": True},
        },
    }
    states, _ = graph.classify(
        graph.build_graph(definition),
        path("SUCCEEDED", visit("Both", 0), visit("Left", 0), visit("Recover", 1)),
    )
    assert states["Both"] is Visit.FAILED
    assert states["Left"] is Visit.SUCCEEDED
    assert states["Recover"] is Visit.COMPENSATION


def test_a_state_that_succeeded_on_a_retry_succeeded_and_a_running_one_runs() -> None:
    drawn = graph.build_graph(PARALLEL_SAGA)
    running = path("RUNNING", visit("Charge", 0, attempts=3, errors=2), visit("Split", 5, done=False))
    states, taken = graph.classify(drawn, running)
    assert states["Charge"] is Visit.SUCCEEDED
    assert states["Split"] is Visit.RUNNING
    assert Edge("Charge", "Split") in taken
    assert "2 retries" in graph.to_dot(drawn, running)


def test_the_svg_carries_each_state_id_and_visit_as_a_class() -> None:
    svg = graph.execution_svg(PARALLEL_SAGA, path("SUCCEEDED", visit("Charge", 0)))
    assert svg.startswith("<svg")
    assert 'id="state&#45;Charge" class="node succeeded"' in svg
    assert 'id="state&#45;Refund" class="node not&#45;visited"' in svg


def test_a_graphviz_failure_is_a_graph_error() -> None:
    with pytest.raises(graph.GraphError, match="Graphviz failed"):
        graph.render_svg("digraph {")
