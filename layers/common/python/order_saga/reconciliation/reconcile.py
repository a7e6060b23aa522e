"""ReconcilePayments: the money rules over the orders created in a recent window (docs/deploy.md,
"Money reconciliation"). Every offence is logged with its order; the counts become metrics."""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ..db import Database
from ..observability import logger
from .attention import OwedInMySql
from .books import read_books
from .ledger import GatewayLedger
from .money import MONEY_INVARIANTS, InvariantResult, MoneyContext, attention_by_order

# The metrics ReconcilePayments publishes, and the alarm reads.
MONEY_VIOLATIONS = "MoneyViolations"
ORDERS_RECONCILED = "OrdersReconciled"


@dataclass(frozen=True)
class Reconciliation:
    since: datetime
    orders: int  # settled orders judged
    results: list[InvariantResult]

    @property
    def violations(self) -> int:
        return sum(result.violations for result in self.results)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "orders": self.orders,
            "violations": self.violations,
            "offences": {result.name: [asdict(o) for o in result.offences] for result in self.results},
        }


def window_start(database: Database, seconds: int) -> datetime:
    """`seconds` before now, by the database's clock (the one `orders.created_at` is written by)."""
    with database.transaction() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP(3) - INTERVAL %s SECOND AS since", (seconds,))
        row = cursor.fetchone()
    assert row is not None
    since: datetime = row["since"]
    return since


def reconcile_payments(database: Database, ledger: GatewayLedger, window_seconds: int) -> Reconciliation:
    """Judge the money of the orders created in the last `window_seconds` that have settled, with
    MySQL's attention records (the function reads no queue)."""
    since = window_start(database, window_seconds)
    books = read_books(database, since)
    context = MoneyContext(
        books=books,
        ledger=ledger.entries(sorted(books.orders), books.since_unix),
        attention=attention_by_order([OwedInMySql(database)]),
    )
    results = [invariant(context) for invariant in MONEY_INVARIANTS]
    for result in results:
        for offence in result.offences:
            logger.warning(
                "money violation",
                extra={"order_id": offence.subject, "invariant": result.name, "detail": offence.detail},
            )
    return Reconciliation(since, len(context.settled()), results)
