"""What the auditor asks parties other than MySQL: the gateway's ledger, the executions, the
attention records. Each is an interface with the implementation the local stack (and AWS) uses;
docs/reliability.md says what a real payment gateway must offer to take the ledger's place.
"""

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from order_saga.db import Database
from order_saga.payment_gateway import SimulatedGateway

if TYPE_CHECKING:
    import redis


@dataclass(frozen=True)
class LedgerEntry:
    """What the gateway holds for one order (its idempotency key): money moved, both ways."""

    charged: Decimal = Decimal(0)  # captured by an approved charge
    refunded: Decimal = Decimal(0)
    reference: str | None = None  # the charge's id
    declined: bool = False

    @property
    def net(self) -> Decimal:
        return self.charged - self.refunded


class GatewayLedger(Protocol):
    def entries(self, order_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        """The entry of every order the gateway knows among `order_ids` (others: nothing moved)."""


class SimulatedLedger:
    """The simulated gateway's ledger: its idempotency records in Redis, read in batches."""

    BATCH = 500

    def __init__(self, client: "redis.Redis") -> None:
        self._redis = client

    def entries(self, order_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        found: dict[str, LedgerEntry] = {}
        for start in range(0, len(order_ids), self.BATCH):
            batch = list(order_ids[start : start + self.BATCH])
            keys = [
                f"{SimulatedGateway.PREFIX}:{kind}:{order_id}"
                for kind in ("charge", "refund")
                for order_id in batch
            ]
            values = self._redis.mget(keys)
            charges, refunds = values[: len(batch)], values[len(batch) :]
            for order_id, charge, refund in zip(batch, charges, refunds, strict=True):
                if charge is None and refund is None:
                    continue
                found[order_id] = _entry(_record(charge), _record(refund))
        return found


def _record(value: Any) -> dict[str, Any] | None:
    return json.loads(value) if value is not None else None


def _amount(record: dict[str, Any]) -> Decimal:
    return Decimal(int(record["response"].get("amount", 0))) / 100


def _entry(charge: dict[str, Any] | None, refund: dict[str, Any] | None) -> LedgerEntry:
    approved = bool(charge and charge["approved"])
    return LedgerEntry(
        charged=_amount(charge) if charge and approved else Decimal(0),
        refunded=_amount(refund) if refund and refund["approved"] else Decimal(0),
        reference=charge["reference"] if charge else None,
        declined=bool(charge) and not approved,
    )


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
class AttentionRecord:
    """A record, left for a person, that an order still owes something.

    `owed` names what it owes: compensation step names, or `notice:<KIND>` for an e-mail not
    delivered. None when the record does not say: a compensation DLQ message says only that the
    compensation failed, so it stands for every compensation (not for a notice)."""

    order_id: str
    source: str
    owed: tuple[str, ...] | None = None

    @property
    def names_compensations(self) -> bool:
        return self.owed is not None and not all(what.startswith("notice:") for what in self.owed)

    def covers(self, what: str) -> bool:
        if self.owed is None:
            return not what.startswith("notice:")
        return what in self.owed


class AttentionSource(Protocol):
    def records(self) -> list[AttentionRecord]: ...


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


class OwedInMySql:
    """The attention record in MySQL: `orders.owed_compensations` of NEEDS_ATTENTION orders."""

    name = "mysql"

    def __init__(self, database: Database) -> None:
        self._database = database

    def records(self) -> list[AttentionRecord]:
        with self._database.transaction() as cursor:
            cursor.execute(
                "SELECT order_id, owed_compensations FROM orders"
                " WHERE status = 'NEEDS_ATTENTION' AND owed_compensations <> ''"
            )
            rows = cursor.fetchall()
        return [
            AttentionRecord(
                row["order_id"],
                self.name,
                tuple(sorted(filter(None, str(row["owed_compensations"]).split(",")))),
            )
            for row in rows
        ]
