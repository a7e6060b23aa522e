"""Executions of the local state machines, read back for the terminal and the local console.

`show` turns an execution's history into its path: every state visited, in order, with the
attempts it took (a Retry adds one), the errors it met and how long it took, then the final status.
It also counts the state transitions, which is what a Standard workflow is billed by: one per
state entered, plus one per retry.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from order_saga import manifest

FAILED_EVENTS = {"TaskFailed", "TaskTimedOut", "LambdaFunctionFailed", "LambdaFunctionTimedOut"}


@dataclass
class StateVisit:
    name: str
    entered: datetime
    exited: datetime | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


@dataclass
class ExecutionPath:
    name: str
    machine: str
    arn: str
    status: str
    started: datetime
    stopped: datetime | None
    visits: list[StateVisit]
    error: str | None = None
    cause: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # the history, as Step Functions gives it

    @property
    def duration_seconds(self) -> float | None:
        return (self.stopped - self.started).total_seconds() if self.stopped else None

    @property
    def transitions(self) -> int:
        return len(self.visits) + sum(visit.retries for visit in self.visits)

    @property
    def final_error(self) -> str:
        """`Error: message` the execution ended with ("" when it did not fail)."""
        return error_name({"error": self.error, "cause": self.cause or ""}) if self.error else ""

    def states(self) -> list[str]:
        return [visit.name for visit in self.visits]


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def error_name(details: dict[str, Any]) -> str:
    """`Error: message` of a failure event, the message taken from a Lambda error payload."""
    error = str(details.get("error", "?"))
    try:
        message = json.loads(details.get("cause", "")).get("errorMessage", "")
    except (TypeError, ValueError, AttributeError):
        message = details.get("cause", "")
    return f"{error}: {message}" if message else error


def path_of(sfn: Any, execution_arn: str) -> ExecutionPath:
    described = sfn.describe_execution(executionArn=execution_arn)
    events = sfn.get_execution_history(executionArn=execution_arn)["events"]  # moto ignores paging
    visits: list[StateVisit] = []
    # The branches of a Parallel state interleave their events: each event belongs to the visit
    # its previousEventId chain leads back to (the last visit when the chain is missing).
    owner: dict[int, StateVisit] = {}
    for event in events:
        kind, details = event["type"], _details(event)
        if kind.endswith("StateEntered"):
            visits.append(StateVisit(details["name"], event["timestamp"]))
            owner[event.get("id", -1)] = visits[-1]
            continue
        if not visits:
            continue
        visit = owner.get(event.get("previousEventId", -1), visits[-1])
        owner[event.get("id", -1)] = visit
        if kind in {"TaskScheduled", "LambdaFunctionScheduled"}:
            visit.attempts += 1
        elif kind in FAILED_EVENTS:
            visit.errors.append(error_name(details))
        elif kind.endswith("StateExited"):
            visit.exited = event["timestamp"]
    return ExecutionPath(
        name=described["name"],
        machine=machine_role(described["stateMachineArn"].rsplit(":", 1)[-1]),
        arn=execution_arn,
        status=described["status"],
        started=described["startDate"],
        stopped=described.get("stopDate"),
        visits=visits,
        error=described.get("error"),
        cause=described.get("cause"),
        events=events,
    )


@dataclass(frozen=True)
class HistoryRow:
    """One event of an execution's history, as the Step Functions console's event table shows it."""

    event_id: int
    kind: str
    step: str
    resource: str
    elapsed_ms: int
    timestamp: datetime
    error: str

    @property
    def failed(self) -> bool:
        return self.kind in FAILED_EVENTS or self.kind.endswith(("Failed", "TimedOut", "Aborted"))


def history_rows(path: ExecutionPath) -> list[HistoryRow]:
    rows: list[HistoryRow] = []
    step = ""
    for event in path.events:
        details = _details(event)
        step = details.get("name", step) if event["type"].endswith("StateEntered") else step
        failure = "error" in details or "cause" in details
        rows.append(
            HistoryRow(
                event_id=int(event.get("id", len(rows) + 1)),
                kind=event["type"],
                step=step,
                resource=":".join(
                    str(details[key]) for key in ("resourceType", "resource") if key in details
                ),
                elapsed_ms=int((event["timestamp"] - path.started).total_seconds() * 1000),
                timestamp=event["timestamp"],
                error=error_name(details)[:500] if failure else "",
            )
        )
        step = "" if event["type"].endswith("StateExited") else step
    return rows


def machine_role(deployed: str) -> str:
    """`OrderSaga` for `OrderSaga-<env>-OrderSaga`: the name the ASL files and the auditor use."""
    machine = manifest.state_machine_named(deployed)
    return machine.name if machine else deployed


def machine_arns(sfn: Any, environment: str | None = None) -> dict[str, str]:
    """The environment's state machines that exist on the endpoint, by role (OrderSaga, ...)."""
    environment = environment or manifest.deployment_environment()
    deployed = {manifest.resource_name(environment, m.name): m.name for m in manifest.STATE_MACHINES}
    found: dict[str, str] = {}
    for page in sfn.get_paginator("list_state_machines").paginate():
        for listed in page["stateMachines"]:
            if listed["name"] in deployed:
                found[deployed[listed["name"]]] = listed["stateMachineArn"]
    return found


def list_executions(sfn: Any, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest executions of every project state machine, newest first."""
    found: list[dict[str, Any]] = []
    for arn in machine_arns(sfn).values():
        kwargs: dict[str, Any] = {"stateMachineArn": arn, "maxResults": 1000}
        if status:
            kwargs["statusFilter"] = status
        found += sfn.list_executions(**kwargs)["executions"]
    found.sort(key=lambda execution: execution["startDate"], reverse=True)
    return found[:limit]


def executions_of_order(sfn: Any, order_id: str) -> list[str]:
    """ARNs of the executions about an order, oldest first: named by its id (on either machine)."""
    return [
        execution["executionArn"]
        for execution in reversed(list_executions(sfn, limit=100_000))
        if execution["name"] == order_id or execution["name"].startswith(f"{order_id}-")
    ]


def render_path(path: ExecutionPath) -> list[str]:
    duration = f"{path.duration_seconds:.2f}s" if path.duration_seconds is not None else "running"
    lines = [
        f"{path.machine} / {path.name}: {path.status} in {duration}, {path.transitions} state transitions",
        f"  {path.arn}",
    ]
    for visit in path.visits:
        took = f"{(visit.exited - visit.entered).total_seconds():.2f}s" if visit.exited else ""
        retries = f", {visit.retries} retr{'y' if visit.retries == 1 else 'ies'}" if visit.retries else ""
        lines.append(f"  -> {visit.name:<24} {took:>8}{retries}")
        lines += [f"       ! {error}" for error in visit.errors]
    if path.error:
        lines.append(f"  final error: {path.final_error[:300]}")
    return lines
