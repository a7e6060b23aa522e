"""The crash matrix: each forward step and each compensation of the saga meets each fault at its
point, one order per cell, and the books auditor judges what every cell's order was left with.

Every fault and hold is aimed at its cell's order, so the cells run side by side; the outage
cells share one MariaDB outage, after the others have settled.
"""

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from grpc_edge.channel import open_channel
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from order_ops.audit import AuditReport
from order_ops.executions import ExecutionPath, path_of
from order_saga.db import Database
from order_saga.manifest import Step
from order_saga.steps.notification import NOTICE_OF
from order_saga.workflow import execution_arn_for

from . import faults
from .chaos_plan import PLENTY_STOCK
from .chaos_stack import (
    ChaosStack,
    call_edge,
    first_steps_held,
    order_statuses,
    ride_out_failover,
    settle,
    stock_the_catalog,
    stop_execution,
)

FORWARD_STEPS = (Step.PROCESS_PAYMENT, Step.RESERVE_STOCK, Step.CONFIRM_ORDER)
# The compensations, and MarkOrderFailed, which ends a compensated order.
COMPENSATION_STEPS = (Step.REFUND_PAYMENT, Step.RELEASE_STOCK, Step.MARK_ORDER_FAILED)
STEPS = (*FORWARD_STEPS, *COMPENSATION_STEPS)


class CrashFault(StrEnum):
    """What meets a cell's step, once."""

    ERROR = "error"  # a transient error before the work: the step's Retry covers it
    TIMEOUT = "timeout"  # the work done, its answer lost
    DUPLICATE = "duplicate"  # the step runs twice with the same input
    CANCEL = "hold+cancel"  # held; the customer's CancelOrder through the edge; released
    STOP = "hold+stop"  # held; an operator's StopExecution; released: the watchdog settles it
    OUTAGE = "outage"  # held; MariaDB down; released; MariaDB back after a failover's length


# The faults that hold the step while the matrix acts.
HELD = (CrashFault.CANCEL, CrashFault.STOP, CrashFault.OUTAGE)
TRANSIENT_ERROR = "DatabaseUnavailable"  # in every step's Retry
# No Retry covers it: the cell's ConfirmOrder fails with it, so its saga compensates.
NOT_RETRIED_ERROR = "InjectedFault"
ITEMS = {"chaos-book": 1, "chaos-pen": 2}  # every cell's order
USER = "crash-matrix"
REACH_SECONDS = 120.0  # how long a held cell waits for its saga to reach its step
SETTLED = {"CONFIRMED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


@dataclass(frozen=True)
class Cell:
    step: Step
    fault: CrashFault

    @property
    def name(self) -> str:
        return f"{self.step.value} x {self.fault.value}"

    def faults_for(self, order_id: str) -> list[faults.Fault]:
        """The faults aimed at the cell's order: before a compensation, a ConfirmOrder failing with
        an error no Retry covers; then the cell's own at its step, once (a hold for the faults
        that act while the step waits, until the matrix removes it)."""
        aimed = []
        if self.step in COMPENSATION_STEPS:
            aimed.append(
                faults.make_fault(
                    function=Step.CONFIRM_ORDER,
                    kind="error",
                    error_type=NOT_RETRIED_ERROR,
                    times=1,
                    order_id=order_id,
                )
            )
        if self.fault in HELD:
            aimed.append(faults.make_fault(function=self.step, kind="hold", order_id=order_id))
        elif self.fault is CrashFault.ERROR:
            aimed.append(
                faults.make_fault(
                    function=self.step, kind="error", error_type=TRANSIENT_ERROR, times=1, order_id=order_id
                )
            )
        else:
            aimed.append(
                faults.make_fault(function=self.step, kind=self.fault.value, times=1, order_id=order_id)
            )
        return aimed


def cells(steps: Iterable[Step] = STEPS, kinds: Iterable[CrashFault] = tuple(CrashFault)) -> list[Cell]:
    """The matrix, step by step, each step with every fault."""
    chosen = list(kinds)
    return [Cell(step, fault) for step in steps for fault in chosen]


def phases(matrix: Sequence[Cell]) -> list[list[Cell]]:
    """The cells that run side by side, then the outage cells, which share one outage."""
    together = [cell for cell in matrix if cell.fault is not CrashFault.OUTAGE]
    outage = [cell for cell in matrix if cell.fault is CrashFault.OUTAGE]
    return [phase for phase in (together, outage) if phase]


def attribute(report: AuditReport, cell_of: Mapping[str, Cell]) -> tuple[dict[str, list[str]], list[str]]:
    """The auditor's offences by the order they name (`invariant: detail`), and those that name
    none of the matrix's orders (a product's stock)."""
    by_order: dict[str, list[str]] = defaultdict(list)
    elsewhere = []
    for result in report.results:
        for offence in result.offences:
            if offence.subject in cell_of:
                by_order[offence.subject].append(f"{result.name}: {offence.detail}")
            else:
                elsewhere.append(f"{result.name}: {offence.subject}: {offence.detail}")
    return dict(by_order), elsewhere


def path_end(path: ExecutionPath) -> str:
    """How a saga's execution ended: its last state (OrderConfirmed, OrderFailed...); failed in a
    step, that step and the error; aborted (or still running), the steps it had entered and not
    left (both compensations, when it stopped in the Parallel)."""
    if not path.visits:
        return path.status
    last, steps = path.visits[-1].name, set(Step)
    if path.status == "SUCCEEDED" or (path.status == "FAILED" and last not in steps):
        return last
    if path.status == "FAILED":
        return f"FAILED in {last}: {path.error}"
    open_steps = sorted({visit.name for visit in path.visits if visit.exited is None and visit.name in steps})
    return f"{path.status} in {', '.join(open_steps) or last}"


@dataclass
class CellOutcome:
    cell: Cell
    order_id: str | None  # None: the edge did not create the cell's order
    status: str  # the order's final status
    path_end: str
    states: list[str] = field(default_factory=list)  # the states its saga visited
    errors: list[str] = field(default_factory=list)  # `Step: Error: message`, retried or caught
    notes: list[str] = field(default_factory=list)  # what the matrix saw as it acted
    missed: list[str] = field(default_factory=list)  # how the cell did not meet its fault
    violations: list[str] = field(default_factory=list)  # the auditor's, and the edge's

    @property
    def settled(self) -> bool:
        return self.status in SETTLED

    @property
    def ok(self) -> bool:
        return self.settled and not self.missed and not self.violations

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.cell.step.value,
            "fault": self.cell.fault.value,
            "order_id": self.order_id,
            "status": self.status,
            "path_end": self.path_end,
            "ok": self.ok,
            "states": self.states,
            "errors": self.errors,
            "notes": self.notes,
            "missed": self.missed,
            "violations": self.violations,
        }


def render_table(outcomes: Sequence[CellOutcome]) -> list[str]:
    """Step x fault -> the order's final status and its saga's path end (and its violations), as
    a Markdown table."""
    steps = list(dict.fromkeys(outcome.cell.step for outcome in outcomes))
    kinds = [kind for kind in CrashFault if any(outcome.cell.fault is kind for outcome in outcomes)]
    by_cell = {outcome.cell: outcome for outcome in outcomes}
    lines = [
        "| step | " + " | ".join(kind.value for kind in kinds) + " |",
        "| --- |" + " --- |" * len(kinds),
    ]
    for step in steps:
        row = [_table_cell(by_cell.get(Cell(step, kind))) for kind in kinds]
        lines.append(f"| {step.value} | " + " | ".join(row) + " |")
    return lines


def _table_cell(outcome: CellOutcome | None) -> str:
    if outcome is None:
        return ""
    text = f"{outcome.status} ({outcome.path_end})"
    if outcome.violations:
        text += f", **{len(outcome.violations)} violation(s)**"
    if outcome.missed:
        text += ", **missed**"
    return text


@dataclass
class MatrixResult:
    outcomes: list[CellOutcome]
    audit: AuditReport
    elsewhere: list[str]  # offences that name none of the matrix's orders
    settled: bool
    duration_seconds: float

    @property
    def ok(self) -> bool:
        return self.audit.ok and self.settled and all(outcome.ok for outcome in self.outcomes)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "settled": self.settled,
            "duration_seconds": round(self.duration_seconds, 1),
            "cells": [outcome.as_json() for outcome in self.outcomes],
            "elsewhere": self.elsewhere,
            "audit": self.audit.as_json(limit=50),
        }

    def render(self) -> list[str]:
        lines = [
            f"crash matrix: {len(self.outcomes)} cells, {self.duration_seconds:.0f}s",
            *render_table(self.outcomes),
        ]
        for outcome in self.outcomes:
            if not outcome.ok:
                lines.append(f"{outcome.cell.name}: order {outcome.order_id}, {outcome.status}")
                lines.append(f"  path: {' > '.join(outcome.states)}")
                lines += [f"  error: {what}" for what in outcome.errors]
                lines += [f"  note: {what}" for what in outcome.notes]
                lines += [f"  missed: {what}" for what in outcome.missed]
                lines += [f"  violation: {what}" for what in outcome.violations]
        lines += [f"violation (no cell): {what}" for what in self.elsewhere]
        lines += self.audit.render()
        if not self.settled:
            lines.append("the stack did not settle within the wait: executions or notices still in flight")
        if not self.ok:
            failed = [outcome.cell.name for outcome in self.outcomes if not outcome.ok]
            lines.append(f"FAILED: {', '.join(failed) or 'the books'}")
        return lines


class CrashMatrix:
    def __init__(self, stack: ChaosStack, matrix: Sequence[Cell], echo: Callable[[str], Any] = print) -> None:
        self.stack = stack
        self.cells = list(matrix)
        self.echo = echo
        self._orders: dict[Cell, str] = {}
        self._notes: dict[Cell, list[str]] = defaultdict(list)
        self._missed: dict[Cell, list[str]] = defaultdict(list)
        self._violations: dict[Cell, list[str]] = defaultdict(list)
        self._lock = threading.Lock()

    def run(self, settle_timeout: float = 600.0) -> MatrixResult:
        """Every phase's cells, each phase settled (at most `settle_timeout` seconds) before the
        next; then the audit of the matrix's orders. The fault plan found is put back."""
        began = time.monotonic()
        found = self.stack.faults_file.read_text() if self.stack.faults_file.exists() else ""
        baseline, since = stock_the_catalog(self.stack.settings, dict.fromkeys(ITEMS, PLENTY_STOCK))
        settled = True
        channel = open_channel(self.stack.address)
        try:
            stub = orders_pb2_grpc.OrderServiceStub(channel)
            for phase in phases(self.cells):
                self.echo(f"  {len(phase)} cell(s): {', '.join(cell.name for cell in phase)}")
                self._run_phase(stub, phase)
                ours = [self._orders[cell] for cell in phase if cell in self._orders]
                stopped = [self._orders[cell] for cell in phase if cell.fault is CrashFault.STOP]
                settled = (
                    settle(self.stack, ours, settle_timeout, self.echo)
                    and self._notified(stopped, settle_timeout)
                    and settled
                )
        finally:
            channel.close()
            left = faults.read_plan(self.stack.faults_file).faults
            faults.replace_plan(found, "the fault plan before the crash matrix", self.stack.faults_file)
            self.stack.mariadb.start()  # harmless when running
        self._note_unfired(left)
        report = self.stack.audit(deadline_seconds=0.0, stock_baseline=baseline, since=since)
        return MatrixResult(self._outcomes(report), report, attribute(report, self._cell_of())[1], settled,
                            time.monotonic() - began)  # fmt: skip

    # -- a phase ----------------------------------------------------------------------------

    def _run_phase(self, stub: Any, phase: list[Cell]) -> None:
        """Create every cell's order while every saga's first step is held, aim its faults, then
        let the sagas go and act on the held ones."""
        with first_steps_held(self.stack.faults_file):
            for cell in phase:
                self._create(stub, cell)
        created = [cell for cell in phase if cell in self._orders]
        actors = [
            threading.Thread(target=self._act, args=(stub, cell), name=f"matrix-{cell.name}", daemon=True)
            for cell in created
            if cell.fault in {CrashFault.CANCEL, CrashFault.STOP}
        ]
        for actor in actors:
            actor.start()
        outage = [cell for cell in created if cell.fault is CrashFault.OUTAGE]
        if outage:
            self._outage(outage)
        for actor in actors:
            actor.join()

    def _create(self, stub: Any, cell: Cell) -> None:
        request = pb.CreateOrderRequest(
            idempotency_key=f"crash-matrix-{uuid.uuid4().hex}",
            items=[pb.OrderItem(product_id=p, quantity=q) for p, q in ITEMS.items()],
            payment_token="tok_visa",  # noqa: S106 - the gateway server's test card
            email=f"{USER}@example.com",
        )
        answer = call_edge(self.stack, stub.CreateOrder, request, USER, f"{cell.name}: CreateOrder")
        if answer.reply is None:
            refused = answer.refused.name if answer.refused else ""
            self._missed[cell].append(answer.violation or f"CreateOrder refused: {refused}")
            return
        order_id = answer.reply.order.order_id
        for fault in cell.faults_for(order_id):
            faults.add_fault(fault, self.stack.faults_file, first=True)
        self._orders[cell] = order_id

    def _act(self, stub: Any, cell: Cell) -> None:
        """Once the cell's saga waits in its step: the customer cancels, or an operator stops the
        saga; then the step is released."""
        order_id = self._orders[cell]
        try:
            if not self._reached(cell):
                return
            if cell.fault is CrashFault.CANCEL:
                request = pb.CancelOrderRequest(order_id=order_id, reason="crash matrix")
                answer = call_edge(self.stack, stub.CancelOrder, request, USER, "CancelOrder")
                if answer.violation:
                    self._add(self._violations, cell, answer.violation)
                elif answer.refused:
                    self._add(self._notes, cell, f"CancelOrder refused: {answer.refused.name}")
                else:
                    self._add(
                        self._notes, cell, f"CancelOrder answered {pb.OrderStatus.Name(answer.reply.status)}"
                    )
            else:
                before = stop_execution(self.stack, order_id)
                self._add(self._notes, cell, f"stopped while {before}")
                if before != "RUNNING":
                    self._add(self._missed, cell, f"the saga was {before} when it was stopped")
        finally:
            faults.remove_fault(self._hold(cell), self.stack.faults_file)

    def _outage(self, outage: list[Cell]) -> None:
        """Once every outage cell's saga waits in its step: MariaDB stopped, the steps released,
        MariaDB started again after a failover's length at the stack's Retry scale."""
        reached = [cell for cell in outage if self._reached(cell)]

        def release() -> None:
            for cell in outage:
                faults.remove_fault(self._hold(cell), self.stack.faults_file)

        if not reached:
            release()
            return
        self.echo(f"  MariaDB down for {len(reached)} held cell(s)")
        ride_out_failover(self.stack.mariadb, self.stack.retry_time_scale, while_down=release)

    def _notified(self, stopped: list[str], timeout: float) -> bool:
        """Whether each stopped saga's order got the notice its status owes (SENT, not only
        claimed) within `timeout`. Its held step may have made it final, and the saga never queued
        the notice: the watchdog sends it once the order is untouched for its grace (60 s locally)."""
        deadline = time.monotonic() + timeout
        database = Database(self.stack.settings)
        try:
            while True:
                with database.transaction() as cursor:
                    cursor.execute(
                        "SELECT o.order_id, o.status, n.kind FROM orders o LEFT JOIN notifications n"
                        " ON n.order_id = o.order_id AND n.status = 'SENT' WHERE o.order_id IN %s",
                        (stopped or [""],),
                    )
                    rows = cursor.fetchall()
                sent = {(row["order_id"], row["kind"]) for row in rows}
                owed = {
                    row["order_id"]
                    for row in rows
                    if row["status"] in NOTICE_OF and (row["order_id"], NOTICE_OF[row["status"]]) not in sent
                }
                if not owed:
                    return True
                if time.monotonic() > deadline:
                    self.echo(
                        f"  no notice within {timeout:.0f}s for the stopped sagas' orders {sorted(owed)}"
                    )
                    return False
                time.sleep(2.0)
        finally:
            database.close()

    def _reached(self, cell: Cell) -> bool:
        """Whether the cell's saga entered its step (where the hold keeps it) within REACH_SECONDS."""
        arn = execution_arn_for(self.stack.saga_arn, self._orders[cell])
        deadline = time.monotonic() + REACH_SECONDS
        while time.monotonic() < deadline:
            try:
                if cell.step in path_of(self.stack.sfn, arn).states():
                    return True
            except self.stack.sfn.exceptions.ExecutionDoesNotExist:
                pass  # not started yet
            time.sleep(0.2)
        self._add(self._missed, cell, f"its saga never entered {cell.step.value} within {REACH_SECONDS:.0f}s")
        return False

    def _hold(self, cell: Cell) -> faults.Fault:
        return faults.make_fault(function=cell.step, kind="hold", order_id=self._orders[cell])

    def _add(self, where: dict[Cell, list[str]], cell: Cell, what: str) -> None:
        with self._lock:
            where[cell].append(what)

    # -- the end ----------------------------------------------------------------------------

    def _note_unfired(self, left: list[faults.Fault]) -> None:
        """A fault that fires once leaves the plan when it fires: one still there never met its call."""
        for cell, order_id in self._orders.items():
            for fault in cell.faults_for(order_id):
                if fault.times is not None and fault in left:
                    self._missed[cell].append(f"never fired: {fault.describe()}")

    def _cell_of(self) -> dict[str, Cell]:
        return {order_id: cell for cell, order_id in self._orders.items()}

    def _outcomes(self, report: AuditReport) -> list[CellOutcome]:
        statuses = order_statuses(self.stack.settings, self._orders.values())
        offences = attribute(report, self._cell_of())[0]
        outcomes = []
        for cell in self.cells:
            order_id = self._orders.get(cell)
            outcome = CellOutcome(cell, order_id, "NOT CREATED", "", missed=self._missed[cell])
            if order_id is not None:
                outcome.status = statuses.get(order_id, "MISSING")
                self._read_path(outcome, order_id)
            outcome.notes = self._notes[cell]
            outcome.violations = self._violations[cell] + offences.get(order_id or "", [])
            outcomes.append(outcome)
        return outcomes

    def _read_path(self, outcome: CellOutcome, order_id: str) -> None:
        """The states and errors of the cell's saga, and how it ended."""
        try:
            path = path_of(self.stack.sfn, execution_arn_for(self.stack.saga_arn, order_id))
        except self.stack.sfn.exceptions.ExecutionDoesNotExist:
            outcome.path_end = "never started"
            return
        outcome.states = path.states()
        outcome.path_end = path_end(path)
        outcome.errors = [f"{visit.name}: {error}" for visit in path.visits for error in visit.errors]
