"""The fault plan: validation, matching, counting, and the file it lives in."""

import json
import multiprocessing
import random
from pathlib import Path
from typing import Any

import pytest

from devstack import faults
from devstack.faults import Fault, FaultKind, FaultPlanError


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    return tmp_path / "faults.json"


def sqs_event(*order_ids: str) -> dict[str, object]:
    return {"Records": [{"body": json.dumps({"order_id": o, "kind": "FAILURE_ALERT"})} for o in order_ids]}


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"function": "Nope", "kind": "timeout"}, "unknown function 'Nope'"),
        ({"function": "ProcessPayment", "kind": "error"}, "needs error_type"),
        ({"function": "ProcessPayment", "kind": "timeout", "error_type": "X"}, "only an error fault"),
        ({"function": "ProcessPayment", "kind": "delay"}, "needs delay_seconds"),
        ({"function": "ProcessPayment", "kind": "duplicate", "times": 0}, "times"),
        ({"function": "ProcessPayment", "kind": "duplicate", "probability": 1.5}, "probability"),
        ({"function": "ProcessPayment", "kind": "hold", "times": 1}, "lasts until it is cleared"),
        ({"function": "ProcessPayment", "kind": "explode"}, "kind"),
    ],
)
def test_a_bad_fault_is_refused_with_its_reason(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(FaultPlanError, match=problem):
        faults.make_fault(**fields)


def test_no_plan_file_means_no_fault(plan_file: Path) -> None:
    assert faults.take_fault("ProcessPayment", {"order_id": "o"}, plan_file) is None
    assert faults.read_plan(plan_file).faults == []


def test_a_counted_fault_fires_n_times_then_disappears(plan_file: Path) -> None:
    # Given an error for the next 2 calls of ProcessPayment
    faults.add_fault(
        faults.make_fault(
            function="ProcessPayment", kind="error", error_type="PaymentGatewayUnavailable", times=2
        ),
        plan_file,
    )
    # When ProcessPayment is called three times (and another function in between)
    hits = [faults.take_fault("ProcessPayment", {"order_id": "o"}, plan_file) for _ in range(2)]
    other = faults.take_fault("ReserveStock", {"order_id": "o"}, plan_file)
    third = faults.take_fault("ProcessPayment", {"order_id": "o"}, plan_file)
    # Then the first two are hit, the rest not, and the plan is empty again
    assert [hit.error_type if hit else None for hit in hits] == ["PaymentGatewayUnavailable"] * 2
    assert other is None
    assert third is None
    assert faults.read_plan(plan_file).faults == []


def test_an_unlimited_fault_stays(plan_file: Path) -> None:
    faults.add_fault(faults.make_fault(function="ConfirmOrder", kind="timeout"), plan_file)
    for _ in range(3):
        assert faults.take_fault("ConfirmOrder", {"order_id": "o"}, plan_file) is not None
    assert len(faults.read_plan(plan_file).faults) == 1


def test_a_fault_aimed_at_an_order_spares_the_others(plan_file: Path) -> None:
    faults.add_fault(
        faults.make_fault(function="SendNotification", kind="duplicate", order_id="o-1"), plan_file
    )
    assert faults.take_fault("SendNotification", sqs_event("o-2"), plan_file) is None
    assert faults.take_fault("SendNotification", sqs_event("o-2", "o-1"), plan_file) is not None
    assert faults.take_fault("SendNotification", {"order_id": "o-1"}, plan_file) is not None
    assert faults.take_fault("SendNotification", "not an event", plan_file) is None


def test_a_probable_fault_fires_about_as_often_as_asked(plan_file: Path) -> None:
    faults.add_fault(
        faults.make_fault(function="ReserveStock", kind="delay", delay_seconds=1, probability=0.3), plan_file
    )
    rng = random.Random(7)
    fired = sum(faults.take_fault("ReserveStock", {}, plan_file, rng) is not None for _ in range(400))
    assert 80 < fired < 160


def test_clear_removes_all_or_one_functions_faults(plan_file: Path) -> None:
    for name in ("ProcessPayment", "ReserveStock", "ProcessPayment"):
        faults.add_fault(faults.make_fault(function=name, kind="timeout"), plan_file)
    assert faults.clear_faults("ProcessPayment", plan_file) == 2
    assert [f.function for f in faults.read_plan(plan_file).faults] == ["ReserveStock"]
    assert faults.clear_faults(None, plan_file) == 1
    with pytest.raises(FaultPlanError, match="unknown function"):
        faults.clear_faults("Nope", plan_file)


def test_a_plan_file_replaces_the_plan_and_a_bad_one_changes_nothing(plan_file: Path) -> None:
    faults.add_fault(faults.make_fault(function="ReserveStock", kind="timeout"), plan_file)
    good = {
        "faults": [
            {"function": "ConfirmOrder", "kind": "error", "error_type": "DatabaseUnavailable", "times": 1}
        ]
    }
    faults.replace_plan(json.dumps(good), "good.json", plan_file)
    assert faults.read_plan(plan_file).faults == [
        Fault(function="ConfirmOrder", kind=FaultKind.ERROR, error_type="DatabaseUnavailable", times=1)
    ]
    before = plan_file.read_text()
    for bad in ('{"faults": [{"function": "ConfirmOrder"}]}', "not json", '{"fault": []}'):
        with pytest.raises(FaultPlanError, match=r"bad\.json"):
            faults.replace_plan(bad, "bad.json", plan_file)
    assert plan_file.read_text() == before


def test_describe_reads_like_the_command_that_set_it() -> None:
    fault = faults.make_fault(
        function="ProcessPayment",
        kind="error",
        error_type="PaymentGatewayUnavailable",
        times=2,
        order_id="o-1",
    )
    assert fault.describe() == (
        "ProcessPayment: error PaymentGatewayUnavailable: injected by the local fault plan, "
        "next 2 call(s) for order o-1"
    )


def test_a_fault_added_first_is_taken_before_the_others_and_one_is_removed_by_value(
    plan_file: Path,
) -> None:
    # Given an error for every call, then one aimed at order o added ahead of it, and a hold twice
    anyone = faults.make_fault(function="ProcessPayment", kind="error", error_type="InjectedFailure")
    aimed = faults.make_fault(function="ProcessPayment", kind="duplicate", times=1, order_id="o")
    hold = faults.make_fault(function="ReserveStock", kind="hold")
    for fault, first in ((anyone, False), (aimed, True), (hold, False), (hold, False)):
        faults.add_fault(fault, plan_file, first=first)
    # Then o's next call takes the aimed one, and the next the other
    assert faults.take_fault("ProcessPayment", {"order_id": "o"}, plan_file) == aimed
    assert faults.take_fault("ProcessPayment", {"order_id": "o"}, plan_file) == anyone
    # and removing the hold removes one of the two, then the other, then nothing
    assert [faults.remove_fault(hold, plan_file) for _ in range(3)] == [True, True, False]
    assert faults.read_plan(plan_file).faults == [anyone]


REWRITES = 300  # the other process's rewrites a reader must see through


def test_a_plan_read_while_another_process_rewrites_it_is_never_torn(plan_file: Path) -> None:
    # Given a plan that another process rewrites again and again (a tool adding and removing a
    # hold, as the crash matrix does while the invoker's held calls read the plan)
    steady = faults.make_fault(function="ReserveStock", kind="duplicate", times=1, order_id="o-1")
    faults.add_fault(steady, plan_file)
    rewrites = multiprocessing.Value("i", 0)
    writer = multiprocessing.Process(target=_rewrite, args=(plan_file, rewrites))
    writer.start()
    try:
        # When a held call reads it meanwhile
        reads: list[bool | FaultPlanError] = []
        while writer.is_alive():
            try:
                reads.append(faults.still_planned(steady, plan_file))
            except FaultPlanError as exc:
                reads.append(exc)
    finally:
        writer.join()
    # Then every read saw a whole plan, with the fault nobody removed
    assert (writer.exitcode, rewrites.value) == (0, REWRITES)
    torn = [read for read in reads if read is not True]
    assert torn == [], f"{len(torn)} of {len(reads)} reads torn, e.g. {torn[:3]}"


def _rewrite(plan_file: Path, rewrites: Any) -> None:
    hold = faults.make_fault(function="ProcessPayment", kind="hold", order_id="an-order-" * 10)
    for _ in range(REWRITES):
        faults.add_fault(hold, plan_file, first=True)
        faults.remove_fault(hold, plan_file)
        rewrites.value += 1
