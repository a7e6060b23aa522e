"""What the auditor asks parties other than MySQL: the gateway's ledger (read over HTTP, in
`order_saga.reconciliation.ledger`), the executions, the attention records. Each is an interface
with the implementation the local stack and AWS both use."""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from order_saga.reconciliation.attention import AttentionRecord, AttentionSource, OwedInMySql
from order_saga.reconciliation.ledger import GatewayLedger, HttpLedger, LedgerEntry

__all__ = [
    "AttentionRecord",
    "AttentionSource",
    "Execution",
    "ExecutionSource",
    "GatewayLedger",
    "HttpLedger",
    "LedgerEntry",
    "OwedInMySql",
    "QueueAttention",
    "StepFunctionsExecutions",
]


@dataclass(frozen=True)
class Execution:
    """One closed or running execution about an order (its name is the order id)."""

    order_id: str
    machine: str  # the state machine's name: OrderSaga, OrderCancellation
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    final_state: str | None = None  # the last state entered, for a FAILED execution


class ExecutionSource(Protocol):
    def executions(self) -> list[Execution]: ...


class StepFunctionsExecutions:
    """Executions of the given state machines, from the Step Functions API (moto locally).

    The last state of a FAILED execution tells how it ended (OrderFailed, SagaNeedsAttention, ...).
    """

    def __init__(self, sfn: Any, machine_arns: dict[str, str]) -> None:
        self._sfn = sfn
        self._machines = machine_arns  # name -> ARN

    def executions(self) -> list[Execution]:
        found = []
        for machine, arn in self._machines.items():
            for listed in self._list(arn):
                final = self._final_state(listed["executionArn"]) if listed["status"] == "FAILED" else None
                found.append(Execution(listed["name"], machine, listed["status"], final))
        return found

    def _list(self, arn: str) -> Iterable[dict[str, Any]]:
        kwargs: dict[str, Any] = {"stateMachineArn": arn, "maxResults": 1000}
        while True:
            page = self._sfn.list_executions(**kwargs)
            yield from page["executions"]
            if not page.get("nextToken"):
                return
            kwargs["nextToken"] = page["nextToken"]

    def _final_state(self, execution_arn: str) -> str | None:
        """The name in the `...StateEntered` event of the highest id. Read backwards, AWS finds it
        on the first page; moto ignores reverseOrder, hence the max rather than the first."""
        history = self._sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True)
        entered = [event for event in history["events"] if event.get("stateEnteredEventDetails")]
        if not entered:
            return None
        return str(max(entered, key=lambda event: event["id"])["stateEnteredEventDetails"]["name"])


@dataclass(frozen=True)
class QueueAttention:
    """Messages on a queue about orders: the compensation DLQ, or the notification DLQ (each
    message is one undelivered e-mail). `peek` reads the queue without consuming it."""

    name: str
    peek: Callable[[], Sequence[dict[str, Any]]]  # message bodies

    def records(self) -> list[AttentionRecord]:
        records = []
        for body in self.peek():
            order_id = body.get("order_id")
            if not isinstance(order_id, str):
                continue
            kind = body.get("kind")
            owed = (f"notice:{kind}",) if isinstance(kind, str) else None
            records.append(AttentionRecord(order_id, self.name, owed))
        return records
