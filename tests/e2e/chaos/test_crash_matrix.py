"""A part of the crash matrix on the e2e tier's stack, run as developers run it (`order-saga chaos
--matrix`, in the stack's environment): the saga's first step and its first compensation, each
meeting an error, a lost answer, a duplicate and a cancellation while held. The operator's stop
(which waits for the watchdog's grace of 60 s) and the database outage are the whole matrix's
(docs/reliability.md); the e2e tier stops sagas in tests/e2e/test_compound_faults.py."""

import json

from devstack import faults
from tests.support.processes import cli
from tests.support.stack import LocalStack

STEPS = ("ProcessPayment", "RefundPayment")
FAULTS = ("error", "timeout", "duplicate", "hold+cancel")


def test_the_first_step_and_the_first_compensation_keep_the_books_through_every_fault(
    stack: LocalStack,
) -> None:
    # Given ProcessPayment and RefundPayment, each with an error, a lost answer, a duplicate and a
    # cancellation while held
    saved = stack.state_dir / "chaos" / "e2e-crash-matrix.json"  # for whoever investigates a failure
    chosen = [arg for step in STEPS for arg in ("--step", step)] + [a for f in FAULTS for a in ("--fault", f)]
    # When the matrix runs them, one order a cell, side by side
    run = cli(
        "chaos", "--matrix", *chosen, "--settle-timeout", "300", "--report", str(saved),
        env=stack.env, timeout=800,
    )  # fmt: skip
    output = run.stdout + run.stderr
    result = json.loads(saved.read_text())
    # Then every cell met its fault and settled, and the auditor finds nothing wrong with any order
    cells = result["cells"]
    assert [(c["step"], c["fault"], c["missed"]) for c in cells if c["missed"]] == [], output
    assert (result["audit"]["violations"], result["settled"]) == (0, True), output
    assert (run.returncode, result["ok"]) == (0, True), output
    # and each cell's saga took the path its fault leads to
    ends = {(c["step"], c["fault"]): (c["status"], c["path_end"]) for c in cells}
    assert ends == {
        ("ProcessPayment", "error"): ("CONFIRMED", "OrderConfirmed"),
        ("ProcessPayment", "timeout"): ("CONFIRMED", "OrderConfirmed"),
        ("ProcessPayment", "duplicate"): ("CONFIRMED", "OrderConfirmed"),
        ("ProcessPayment", "hold+cancel"): ("CANCELLED", "OrderCancelled"),
        ("RefundPayment", "error"): ("FAILED", "OrderFailed"),
        ("RefundPayment", "timeout"): ("FAILED", "OrderFailed"),
        ("RefundPayment", "duplicate"): ("FAILED", "OrderFailed"),
        ("RefundPayment", "hold+cancel"): ("FAILED", "OrderFailed"),
    }, output
    # and the fault plan is empty again
    assert faults.read_plan(stack.faults_file).faults == [], output
