"""The fault plan: failures the local Lambda invoker injects, like AWS FIS's Lambda actions.

A plan is a list of faults, each aimed at one function (and optionally one order). It lives in
`.devstack/faults.json`, so it can be written by hand, by `order-saga faults set|clear`, or by a
test, and the running moto server reads it on every invocation. Handlers know nothing of it.

Kinds:
- `error`: the invocation fails with the given errorType; the handler does not run.
- `delay`: the handler starts late by `delay_seconds`, which count against the function's
  timeout (a delay longer than the timeout ends in Sandbox.Timedout without running the handler).
- `timeout`: the handler runs and its work is done, but the answer never arrives: the invocation
  ends in Sandbox.Timedout when the function's timeout expires (the saga's hardest case).
- `duplicate`: the handler runs twice with the same event (at-least-once delivery); the caller
  gets the second answer.
- `skip`: the invocation succeeds with an empty answer and the handler never runs: a function
  that does nothing (a bad deployment). The chaos campaign's tests break a compensation with it
  to show that the auditor catches what such a function leaves behind.

- `hold`: the invocation waits, before its handler runs, for as long as the fault stays in the
  plan (until `order-saga faults clear` or a test removes it), at most the function's timeout
  (then Sandbox.Timedout). Released, it meets the plan as it is then, like a call arriving at that
  moment: a fault added while it waited hits it. It makes a race deterministic: hold a step, act,
  release.
A fault fires always, for the next `times` matching calls, and/or with a `probability`.
"""

import fcntl
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from order_saga.functions import FUNCTIONS

from .paths import STATE_DIR

FAULTS_FILE = STATE_DIR / "faults.json"


class FaultPlanError(ValueError):
    """A fault or a plan file that does not make sense; nothing was changed."""


class FaultKind(StrEnum):
    ERROR = "error"
    DELAY = "delay"
    TIMEOUT = "timeout"
    DUPLICATE = "duplicate"
    SKIP = "skip"

    HOLD = "hold"


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    function: str = Field(description="the function's name, as in order_saga.functions.FUNCTIONS")
    kind: FaultKind
    error_type: str | None = Field(None, description="for `error`: the errorType to report")
    message: str = "injected by the local fault plan"
    delay_seconds: float | None = Field(None, gt=0, description="for `delay`")
    times: int | None = Field(None, ge=1, description="fire for the next N matching calls; None: always")
    probability: float = Field(1.0, gt=0, le=1, description="chance that a matching call is hit")
    order_id: str | None = Field(None, description="only invocations about this order")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = {spec.name for spec in FUNCTIONS}
        if self.function not in names:
            raise ValueError(f"unknown function {self.function!r}; known: {', '.join(sorted(names))}")
        if (self.kind is FaultKind.ERROR) != (self.error_type is not None):
            raise ValueError("an error fault needs error_type, and only an error fault takes one")
        if (self.kind is FaultKind.DELAY) != (self.delay_seconds is not None):
            raise ValueError("a delay fault needs delay_seconds, and only a delay fault takes them")
        if self.kind is FaultKind.HOLD and self.times is not None:
            raise ValueError("a hold fault lasts until it is cleared; it takes no times")
        return self

    def matches(self, function_name: str, event: Any) -> bool:
        return self.function == function_name and (self.order_id is None or self.order_id in orders_of(event))

    def describe(self) -> str:
        match self.kind:
            case FaultKind.ERROR:
                what = f"error {self.error_type}: {self.message}"
            case FaultKind.DELAY:
                what = f"delay {self.delay_seconds}s"
            case FaultKind.TIMEOUT:
                what = "timeout (the handler runs, its answer is lost)"
            case FaultKind.DUPLICATE:
                what = "duplicate invocation"
            case FaultKind.SKIP:
                what = "skip (answers success, the handler does nothing)"

            case FaultKind.HOLD:
                what = "hold (the handler waits until the fault is cleared)"
        when = "always" if self.times is None else f"next {self.times} call(s)"
        if self.probability < 1:
            when += f", probability {self.probability:g}"
        scope = f" for order {self.order_id}" if self.order_id else ""
        return f"{self.function}: {what}, {when}{scope}"


class FaultPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    faults: list[Fault] = []


def orders_of(event: Any) -> set[str]:
    """The order ids an invocation is about: a saga step's input, or the bodies of an SQS batch."""
    if not isinstance(event, dict):
        return set()
    if isinstance(event.get("order_id"), str):
        return {event["order_id"]}
    found = set()
    for record in event.get("Records", []) if isinstance(event.get("Records"), list) else []:
        try:
            body = json.loads(record.get("body", ""))
        except (TypeError, ValueError, AttributeError):
            continue
        if isinstance(body, dict) and isinstance(body.get("order_id"), str):
            found.add(body["order_id"])
    return found


def problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or 'fault'}: {error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors()
    )


def make_fault(**fields: Any) -> Fault:
    """A validated fault; bad fields are a FaultPlanError naming each problem."""
    try:
        return Fault(**fields)
    except ValidationError as exc:
        raise FaultPlanError(problems(exc)) from exc


def parse_plan(text: str, source: str) -> FaultPlan:
    try:
        return FaultPlan.model_validate_json(text or "{}")
    except ValidationError as exc:
        raise FaultPlanError(f"{source} is not a valid fault plan: {problems(exc)}") from exc


@contextmanager
def _locked_plan(path: Path) -> Iterator[FaultPlan]:
    """The plan, read and written back under an exclusive lock (the server and the CLI share it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        plan = parse_plan(handle.read(), str(path))
        before = plan.model_dump_json()
        yield plan
        after = plan.model_dump_json(exclude_defaults=True, indent=2)
        if plan.model_dump_json() != before:
            handle.seek(0)
            handle.truncate()
            handle.write(after + "\n")


def read_plan(path: Path | None = None) -> FaultPlan:
    """The plan as it stands, read under a shared lock: a writer empties the file before it writes
    the new plan, so a read without the lock can see no plan, or half of one."""
    path = path or FAULTS_FILE
    if not path.exists():
        return FaultPlan()
    with path.open() as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        return parse_plan(handle.read(), str(path))


def add_fault(fault: Fault, path: Path | None = None, *, first: bool = False) -> None:
    """Add the fault at the end of the plan, or with `first` ahead of every other (a call takes
    the first fault that matches it)."""
    with _locked_plan(path or FAULTS_FILE) as plan:
        plan.faults.insert(0 if first else len(plan.faults), fault)


def remove_fault(fault: Fault, path: Path | None = None) -> bool:
    """Remove one fault equal to this one (an identical one added by someone else stays); whether
    there was one."""
    with _locked_plan(path or FAULTS_FILE) as plan:
        if fault not in plan.faults:
            return False
        plan.faults.remove(fault)
        return True


def replace_plan(text: str, source: str, path: Path | None = None) -> FaultPlan:
    """Make the plan in `text` the active one (validated first: a bad file changes nothing)."""
    new = parse_plan(text, source)
    with _locked_plan(path or FAULTS_FILE) as plan:
        plan.faults[:] = new.faults
    return new


def clear_faults(function: str | None = None, path: Path | None = None) -> int:
    """Remove every fault (or every fault of one function); the number removed."""
    if function is not None and function not in {spec.name for spec in FUNCTIONS}:
        raise FaultPlanError(f"unknown function {function!r}")
    with _locked_plan(path or FAULTS_FILE) as plan:
        kept = [fault for fault in plan.faults if function is not None and fault.function != function]
        removed = len(plan.faults) - len(kept)
        plan.faults[:] = kept
    return removed


def still_planned(fault: Fault, path: Path | None = None) -> bool:
    """Whether the fault is still in the plan (a hold lasts until it is cleared)."""
    return fault in read_plan(path).faults


def take_fault(
    function_name: str, event: Any, path: Path | None = None, rng: random.Random | None = None
) -> Fault | None:
    """The fault that hits this invocation, if any, counting it against its `times`."""
    path = path or FAULTS_FILE
    if not path.exists():
        return None
    draw = (rng or random.Random()).random  # noqa: S311 - chaos, not cryptography
    with _locked_plan(path) as plan:
        for index, fault in enumerate(plan.faults):
            if not fault.matches(function_name, event) or draw() >= fault.probability:
                continue
            if fault.times is not None:
                if fault.times == 1:
                    del plan.faults[index]
                else:
                    plan.faults[index] = fault.model_copy(update={"times": fault.times - 1})
            return fault
    return None
