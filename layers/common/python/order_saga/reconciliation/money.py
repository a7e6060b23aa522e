"""The money rules: the gateway's ledger, the payments rows and the orders' outcomes agree.

The auditor (`order_ops.audit`) checks them among its other invariants; ReconcilePayments checks
them alone, on a schedule. Only settled orders are judged: CONFIRMED, FAILED, CANCELLED, or
NEEDS_ATTENTION, which may hold only the money an attention record says it owes.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from ..manifest import Step
from ..models import OrderStatus
from .attention import AttentionRecord, AttentionSource
from .books import Books, OrderRow, PaymentRow
from .ledger import LedgerEntry

SETTLED = frozenset(status for status in OrderStatus if status.is_terminal)


@dataclass(frozen=True)
class Offence:
    subject: str  # an order id or a product id
    detail: str


@dataclass
class InvariantResult:
    name: str
    rule: str
    checked: int = 0
    offences: list[Offence] = field(default_factory=list)

    @property
    def violations(self) -> int:
        return len(self.offences)

    def flag(self, subject: str, detail: str) -> None:
        self.offences.append(Offence(subject, detail))


def attention_by_order(sources: Iterable[AttentionSource]) -> dict[str, list[AttentionRecord]]:
    records: dict[str, list[AttentionRecord]] = defaultdict(list)
    for source in sources:
        for record in source.records():
            records[record.order_id].append(record)
    return dict(records)


@dataclass
class MoneyContext:
    """The books, the ledger's entry of each of their orders, and the attention records."""

    books: Books
    ledger: dict[str, LedgerEntry]
    attention: dict[str, list[AttentionRecord]]

    def settled(self) -> list[OrderRow]:
        return [order for order in self.books.orders.values() if order.status in SETTLED]

    def entry(self, order_id: str) -> LedgerEntry:
        return self.ledger.get(order_id, LedgerEntry())

    def recorded(self, order_id: str, what: str) -> bool:
        """Whether an attention record of the order covers `what` (a step, or notice:KIND). A
        record that names the compensations owed is believed over one that does not say."""
        records = self.attention.get(order_id, [])
        precise = [record for record in records if record.names_compensations]
        if precise and not what.startswith("notice:"):
            records = precise
        return any(record.covers(what) for record in records)


def money_matches_outcome(ctx: MoneyContext) -> InvariantResult:
    result = InvariantResult(
        "money per order",
        "the gateway's net captured amount is the total if CONFIRMED, else 0; "
        "a NEEDS_ATTENTION order holds only money its record owes",
    )
    for order in ctx.settled():
        result.checked += 1
        net = ctx.entry(order.order_id).net
        if order.status is OrderStatus.NEEDS_ATTENTION:
            if net and not ctx.recorded(order.order_id, Step.REFUND_PAYMENT):
                result.flag(order.order_id, f"NEEDS_ATTENTION holds {net} with no record owing the refund")
            continue
        expected = order.total if order.status is OrderStatus.CONFIRMED else Decimal(0)
        if net != expected:
            result.flag(order.order_id, f"{order.status}: gateway holds {net}, expected {expected}")
    return result


def payments_match_ledger(ctx: MoneyContext) -> InvariantResult:
    result = InvariantResult("payments row vs ledger", "the payments row says what the gateway did")
    for order in ctx.settled():
        row, entry = ctx.books.payments.get(order.order_id), ctx.entry(order.order_id)
        if row is None and not entry.charged and not entry.declined:
            continue
        result.checked += 1
        problem = _payment_problem(order, row, entry)
        if problem:
            result.flag(order.order_id, problem)
    return result


def _payment_problem(order: OrderRow, row: PaymentRow | None, entry: LedgerEntry) -> str | None:
    if row is None:
        return f"the gateway charged {entry.charged} (refunded {entry.refunded}) but no payments row exists"
    if row.status == "SUCCESS":
        return _success_problem(row, entry)
    if row.status == "REFUNDED":
        return _refunded_problem(row, entry)
    if row.status == "FAILED":
        return f"FAILED, but the gateway charged {entry.charged}" if entry.charged else None
    if order.status is OrderStatus.NEEDS_ATTENTION:
        return None  # a charge in progress when the saga gave up: the record owes its settling
    return f"payment still {row.status} on a {order.status} order"


def _success_problem(row: PaymentRow, entry: LedgerEntry) -> str | None:
    if entry.charged != row.amount or entry.refunded:
        return f"SUCCESS {row.amount}: the gateway charged {entry.charged}, refunded {entry.refunded}"
    if entry.reference != row.reference:
        return f"SUCCESS with reference {row.reference}, the gateway's is {entry.reference}"
    return None


def _refunded_problem(row: PaymentRow, entry: LedgerEntry) -> str | None:
    if not row.amount:  # the marker of a compensation that found nothing charged
        return f"marked 'nothing charged', but the gateway holds {entry.net}" if entry.net else None
    if entry.charged != row.amount or entry.refunded != row.amount:
        return f"REFUNDED {row.amount}: the gateway charged {entry.charged}, refunded {entry.refunded}"
    return None


MONEY_INVARIANTS: tuple[Callable[[MoneyContext], InvariantResult], ...] = (
    money_matches_outcome,
    payments_match_ledger,
)
