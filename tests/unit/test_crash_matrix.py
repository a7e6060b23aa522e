"""The crash matrix's cells, the faults each aims at its order, how the auditor's offences are
told to cells, and the table, without any server."""

from datetime import UTC, datetime

from devstack.crash_matrix import (
    COMPENSATION_STEPS,
    FORWARD_STEPS,
    Cell,
    CellOutcome,
    CrashFault,
    attribute,
    cells,
    path_end,
    phases,
    render_table,
)
from order_ops.audit import AuditReport
from order_ops.executions import ExecutionPath, StateVisit
from order_saga.manifest import Step
from order_saga.reconciliation.money import InvariantResult, Offence

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def test_the_matrix_is_every_step_and_compensation_with_every_fault_once() -> None:
    matrix = cells()
    assert len(matrix) == len(set(matrix)) == 6 * 6
    assert {cell.step for cell in matrix} == {*FORWARD_STEPS, *COMPENSATION_STEPS}
    assert {cell.fault for cell in matrix} == set(CrashFault)
    assert cells() == matrix  # the same every time


def test_the_outage_cells_run_last_and_together() -> None:
    matrix = cells()
    first, outage = phases(matrix)
    assert {cell.fault for cell in outage} == {CrashFault.OUTAGE}
    assert len(outage) == 6
    assert CrashFault.OUTAGE not in {cell.fault for cell in first}
    assert phases(cells(kinds=[CrashFault.ERROR])) == [cells(kinds=[CrashFault.ERROR])]


def test_a_forward_cell_aims_only_its_fault_at_its_step_and_order() -> None:
    [error] = Cell(Step.RESERVE_STOCK, CrashFault.ERROR).faults_for("o-1")
    assert (error.function, error.kind, error.error_type, error.times, error.order_id) == (
        "ReserveStock",
        "error",
        "DatabaseUnavailable",
        1,
        "o-1",
    )
    [timeout] = Cell(Step.PROCESS_PAYMENT, CrashFault.TIMEOUT).faults_for("o-2")
    assert (timeout.function, timeout.kind, timeout.times, timeout.order_id) == (
        "ProcessPayment",
        "timeout",
        1,
        "o-2",
    )


def test_a_compensation_cell_first_fails_its_orders_confirmation_with_an_error_no_retry_covers() -> None:
    confirm, hold = Cell(Step.RELEASE_STOCK, CrashFault.STOP).faults_for("o-3")
    assert (confirm.function, confirm.kind, confirm.error_type, confirm.times, confirm.order_id) == (
        "ConfirmOrder",
        "error",
        "InjectedFault",
        1,
        "o-3",
    )
    assert (hold.function, hold.kind, hold.times, hold.order_id) == ("ReleaseStock", "hold", None, "o-3")


def test_every_held_fault_holds_its_step_until_released() -> None:
    for fault in (CrashFault.CANCEL, CrashFault.STOP, CrashFault.OUTAGE):
        [hold] = Cell(Step.CONFIRM_ORDER, fault).faults_for("o-4")
        assert (hold.function, hold.kind, hold.times) == ("ConfirmOrder", "hold", None)


def test_offences_are_told_to_the_cell_whose_order_they_name() -> None:
    # Given an audit with offences about two of the matrix's orders and one product
    report = AuditReport(
        results=[
            InvariantResult("notifications", "...", 3, [Offence("o-1", "FAILED but no FAILURE_ALERT")]),
            InvariantResult(
                "money per order",
                "...",
                3,
                [Offence("o-2", "holds 12.50"), Offence("o-1", "holds 1.20")],
            ),
            InvariantResult("stock = baseline - committed", "...", 2, [Offence("chaos-pen", "off by 2")]),
        ],
        orders=3,
        in_flight=[],
        owed=[],
        reclaimed=[],
    )
    cell_of = {
        "o-1": Cell(Step.REFUND_PAYMENT, CrashFault.STOP),
        "o-2": Cell(Step.RESERVE_STOCK, CrashFault.ERROR),
    }
    # When they are attributed
    by_order, elsewhere = attribute(report, cell_of)
    # Then each order has its own, and the product's belongs to no cell
    assert by_order == {
        "o-1": ["notifications: FAILED but no FAILURE_ALERT", "money per order: holds 1.20"],
        "o-2": ["money per order: holds 12.50"],
    }
    assert elsewhere == ["stock = baseline - committed: chaos-pen: off by 2"]


def visit(name: str, *, left: bool = True) -> StateVisit:
    return StateVisit(name, NOW, NOW if left else None, attempts=1)


def execution(status: str, *visits: StateVisit, error: str | None = None) -> ExecutionPath:
    return ExecutionPath("o-1", "OrderSaga", "arn", status, NOW, NOW, list(visits), error)


def test_a_path_ends_in_its_last_state_or_where_it_was_aborted() -> None:
    assert (
        path_end(execution("SUCCEEDED", visit("ConfirmOrder"), visit("OrderConfirmed"))) == "OrderConfirmed"
    )
    assert path_end(execution("FAILED", visit("MarkOrderFailed"), visit("OrderFailed"))) == "OrderFailed"
    # failed in a step (moto ends a stopped saga so when the held call it waits for fails)
    throttled = execution("FAILED", visit("ProcessPayment"), error="Lambda.TooManyRequestsException")
    assert path_end(throttled) == "FAILED in ProcessPayment: Lambda.TooManyRequestsException"
    # aborted while its RefundPayment was held and its ReleaseStock had finished
    aborted = execution(
        "ABORTED",
        visit("ConfirmOrder"),
        visit("Compensate", left=False),
        visit("RefundPayment", left=False),
        visit("ReleaseStock"),
    )
    assert path_end(aborted) == "ABORTED in RefundPayment"
    # aborted while both compensations ran, and in a state that is no step
    both = execution("ABORTED", visit("RefundPayment", left=False), visit("ReleaseStock", left=False))
    assert path_end(both) == "ABORTED in RefundPayment, ReleaseStock"
    assert path_end(execution("ABORTED", visit("Compensate", left=False))) == "ABORTED in Compensate"
    assert path_end(execution("RUNNING")) == "RUNNING"


def outcome(step: Step, fault: CrashFault, status: str, end: str, **extra: list[str]) -> CellOutcome:
    return CellOutcome(Cell(step, fault), "o", status, end, **extra)


def test_the_table_shows_each_cells_final_state_path_end_and_what_went_wrong() -> None:
    table = render_table(
        [
            outcome(Step.PROCESS_PAYMENT, CrashFault.ERROR, "CONFIRMED", "OrderConfirmed"),
            outcome(Step.PROCESS_PAYMENT, CrashFault.STOP, "FAILED", "ABORTED in ProcessPayment"),
            outcome(
                Step.MARK_ORDER_FAILED,
                CrashFault.STOP,
                "FAILED",
                "ABORTED in MarkOrderFailed",
                violations=["notifications: FAILED but no FAILURE_ALERT"],
            ),
            outcome(
                Step.MARK_ORDER_FAILED, CrashFault.ERROR, "PENDING", "RUNNING in X", missed=["never fired"]
            ),
        ]
    )
    assert table == [
        "| step | error | hold+stop |",
        "| --- | --- | --- |",
        "| ProcessPayment | CONFIRMED (OrderConfirmed) | FAILED (ABORTED in ProcessPayment) |",
        "| MarkOrderFailed | PENDING (RUNNING in X), **missed** "
        "| FAILED (ABORTED in MarkOrderFailed), **1 violation(s)** |",
    ]
