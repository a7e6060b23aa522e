"""The books auditor: do MySQL, the gateway's ledger, the executions and the DLQs agree?

`run_audit` reads everything once and checks every invariant of `invariants.INVARIANTS`; the
report has one row per invariant (orders or products checked, violations, the offenders), the
orders still in flight, what each NEEDS_ATTENTION order still owes, and the notices taken over
from a consumer that died (each may have reached its customer twice). It is meant for any
moment: orders in flight are left to later runs, except where a rule holds at every instant.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from order_saga.db import Database
from order_saga.reconciliation.books import Books, read_books
from order_saga.reconciliation.money import InvariantResult, attention_by_order

from .invariants import (
    INVARIANTS,
    AuditContext,
    Owed,
    Reclaimed,
    owed_by_attention_orders,
    reclaimed_notices,
)
from .sources import (
    AttentionRecord,
    AttentionSource,
    Execution,
    ExecutionSource,
    GatewayLedger,
    HttpLedger,
    LedgerEntry,
    OwedInMySql,
    QueueAttention,
    StepFunctionsExecutions,
)

DEFAULT_DEADLINE_SECONDS = 3600.0

__all__ = [
    "AttentionRecord",
    "AuditReport",
    "Books",
    "Execution",
    "HttpLedger",
    "LedgerEntry",
    "OwedInMySql",
    "QueueAttention",
    "StepFunctionsExecutions",
    "read_books",
    "run_audit",
]


@dataclass(frozen=True)
class AuditReport:
    results: list[InvariantResult]
    orders: int
    in_flight: list[str]
    owed: list[Owed]
    reclaimed: list[Reclaimed]

    @property
    def violations(self) -> int:
        return sum(result.violations for result in self.results)

    @property
    def ok(self) -> bool:
        return self.violations == 0

    def offending_orders(self) -> list[str]:
        """Every subject (order or product id) named by a violation, once, in report order."""
        return list(dict.fromkeys(o.subject for result in self.results for o in result.offences))

    def as_json(self, limit: int | None = None) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "orders": self.orders,
            "violations": self.violations,
            "in_flight": self.in_flight,
            "invariants": [
                {
                    "name": result.name,
                    "rule": result.rule,
                    "checked": result.checked,
                    "violations": result.violations,
                    "offenders": [asdict(o) for o in result.offences[:limit]],
                }
                for result in self.results
            ],
            "needs_attention": [
                {
                    "order_id": o.order_id,
                    "refund": str(o.refund),
                    "units": o.units,
                    "records": list(o.records),
                }
                for o in self.owed
            ],
            "reclaimed_notices": [asdict(r) for r in self.reclaimed],
        }

    def render(self, offenders: int = 3) -> list[str]:
        width = max(len(result.name) for result in self.results)
        lines = [f"{'invariant':<{width}}  {'checked':>7}  {'violations':>10}  first offenders"]
        for result in self.results:
            first = "; ".join(f"{o.subject}: {o.detail}" for o in result.offences[:offenders])
            lines.append(f"{result.name:<{width}}  {result.checked:>7}  {result.violations:>10}  {first}")
        lines.append(f"{self.orders} orders, {len(self.in_flight)} in flight, {self.violations} violation(s)")
        for owed in self.owed:
            refund = [f"refund {owed.refund:.2f}"] if owed.refund else []
            units = [f"{p}x{q}" for p, q in sorted(owed.units.items())]
            owes = ", ".join(refund + units) or "nothing by the books"
            records = ", ".join(owed.records) or "NO RECORD"
            lines.append(f"needs attention: {owed.order_id} owes {owes} [{records}]")
        for notice in self.reclaimed:
            lines.append(
                f"notice taken over: {notice.order_id} {notice.kind} ({notice.times}x), "
                "may have reached the customer twice"
            )
        return lines


def run_audit(
    database: Database,
    ledger: GatewayLedger,
    executions: ExecutionSource,
    attention: Sequence[AttentionSource],
    *,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    stock_baseline: dict[str, int] | None = None,
    since: datetime | None = None,
) -> AuditReport:
    """The orders created since `since` (all by default) are audited; products always all.

    MySQL is read in one snapshot, then the ledger, the executions and the records. An order
    that moves between those reads (a cancellation of a CONFIRMED order, typically) can show a
    passing offence: run the auditor again, or on a quiet system, before acting on one."""
    books = read_books(database, since)
    context = AuditContext(
        books=books,
        ledger=ledger.entries(sorted(books.orders), books.since_unix),
        executions=executions.executions(),
        attention=attention_by_order(attention),
        deadline_seconds=deadline_seconds,
        stock_baseline=stock_baseline,
    )
    return AuditReport(
        results=[invariant(context) for invariant in INVARIANTS],
        orders=len(books.orders),
        in_flight=[order.order_id for order in context.in_flight()],
        owed=owed_by_attention_orders(context),
        reclaimed=reclaimed_notices(context),
    )
