"""What the cost estimate reads from the code: an order's path through the state machines, and
the custom metrics the functions publish."""

import ast
import typing
from pathlib import Path

import pytest

from cdk import custom_metrics
from cdk.order_paths import CANCELLED, ORDER_CANCELLATION, ORDER_SAGA, PATHS, Run, UnknownPath, execute
from devstack.asl import load
from order_saga.functions import FUNCTIONS, FunctionSpec
from order_saga.manifest import STATE_MACHINES, Step
from order_saga.reconciliation import reconcile
from order_saga.watchdog import WatchdogAction

DEFINITIONS = {machine.name: load(machine) for machine in STATE_MACHINES}


@pytest.mark.parametrize(
    ("run", "states", "invocations", "failed", "events"),
    [
        (Run(ORDER_SAGA), 5, 3, False, 24),
        (Run(ORDER_SAGA, "ProcessPayment"), 8, 4, True, 34),
        (Run(ORDER_SAGA, "ReserveStock"), 9, 5, True, 39),
        (Run(ORDER_SAGA, "ConfirmOrder", CANCELLED), 10, 6, True, 44),
        (Run(ORDER_CANCELLATION), 7, 3, False, 30),
    ],
)
def test_a_path_enters_the_states_the_definition_leads_it_through(
    run: Run, states: int, invocations: int, failed: bool, events: int
) -> None:
    execution = execute(DEFINITIONS, run)
    # The transitions Standard workflows bill, branches of the Parallel state included; the
    # history events as the local Step Functions recorded them for the demo's orders
    assert execution.transitions == states
    assert execution.invocations == invocations
    assert execution.notices == 1
    assert execution.failed is failed
    assert sum(n for n, _ in execution.events()) == events
    # At level ERROR: the failed Task, the Fail state and the failed execution
    assert execution.error_events == (3 if failed else 0)


def test_a_cancellation_before_confirmation_ends_in_the_cancelled_fail_state() -> None:
    execution = execute(DEFINITIONS, Run(ORDER_SAGA, "ConfirmOrder", CANCELLED))
    assert [s.name for s in execution.states][-3:] == [
        "MarkOrderCancelled",
        "SendCancellationNotice",
        "OrderCancelled",
    ]
    assert [s.after_error for s in execution.states[:2]] == [False, False]
    assert all(s.after_error for s in execution.states[2:])


@pytest.mark.parametrize(
    ("run", "problem"),
    [
        (Run(ORDER_SAGA, "NoSuchState"), "never enters NoSuchState"),
        (Run(ORDER_SAGA, "SendOrderConfirmation"), "has no Catch"),
        (Run(ORDER_SAGA, choices={"CompensationOutcome": "MarkOrderCancelled"}), "never enters"),
    ],
)
def test_a_path_the_definition_cannot_take_is_refused(run: Run, problem: str) -> None:
    with pytest.raises(UnknownPath, match=problem):
        execute(DEFINITIONS, run)


def test_the_mix_of_outcomes_covers_every_order() -> None:
    assert sum(path.share for path in PATHS) == pytest.approx(1.0)
    for path in PATHS:
        for run in path.runs:
            execute(DEFINITIONS, run)


def test_every_function_publishes_the_metrics_its_code_adds() -> None:
    metrics = custom_metrics.function_metric_set()
    by_service: dict[str, set[str]] = {}
    for metric in metrics:
        assert metric.namespace == "OrderSaga"
        by_service.setdefault(dict(metric.dimensions)["service"], set()).add(metric.name)
    # Each saga step its latency under its own Step dimension, and what saga_step(counts=) names
    steps = {dict(m.dimensions).get("Step") for m in metrics if m.name == "StepLatency"}
    assert steps == {"process_payment", "refund_payment", "reserve_stock", "release_stock"} | {
        "confirm_order",
        "mark_order_failed",
        "mark_order_cancelled",
        "mark_needs_attention",
    }
    assert by_service["orders"] == {
        "StepLatency",
        "OrdersConfirmed",
        "OrdersFailed",
        "OrdersCancelled",
        "CompensationFailures",
    }
    assert by_service["notification"] == {"NotificationsSent", "NotificationsReclaimed"}
    assert by_service["reconciliation"] == {reconcile.ORDERS_RECONCILED, reconcile.MONEY_VIOLATIONS}
    # The watchdog's: one per action that did something
    actions = set(typing.get_args(WatchdogAction)) - {"none"}
    assert by_service["watchdog"] == {f"Watchdog{action.title()}" for action in actions}
    assert len(metrics) == 22


def add_metric_modules(folder: Path) -> set[Path]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_metric":
                found.add(path)
    return found


def test_only_the_modules_the_estimate_reads_publish_metrics() -> None:
    # The estimate reads saga_step's module and each function's handler module: a metric added
    # anywhere else would be billed without the estimate knowing
    read = {custom_metrics.LAMBDA_STEP} | {
        custom_metrics.REPO_ROOT / spec.code_dir / f"{spec.handler.split('.')[0]}.py" for spec in FUNCTIONS
    }
    publishing = add_metric_modules(custom_metrics.REPO_ROOT / "functions") | add_metric_modules(
        custom_metrics.LAYER_ROOT
    )
    assert publishing <= read


@pytest.mark.parametrize(
    "call",
    [
        'metrics.add_metric(name=f"Sent{kind}", unit="Count", value=1)',
        "metrics.add_metric(name=pick(), unit='Count', value=1)",
        "metrics.add_metric(unit='Count', value=1)",
    ],
)
def test_a_metric_name_the_reader_cannot_follow_stops_the_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    handler = tmp_path / "functions" / "mailer" / "handler.py"
    handler.parent.mkdir(parents=True)
    handler.write_text(f"def send(event, context):\n    kind = 'x'\n    {call}\n")
    monkeypatch.setattr(custom_metrics, "REPO_ROOT", tmp_path)
    spec = FunctionSpec(Step.SEND_NOTIFICATION, "mailer", "handler.send", "test", frozenset())
    with pytest.raises(custom_metrics.UnreadableMetric):
        custom_metrics.function_metrics(spec)
