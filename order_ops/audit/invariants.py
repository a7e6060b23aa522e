"""The saga's promise as invariants over the books, each a function giving one result row.

An order is *settled* when it is CONFIRMED, FAILED, CANCELLED or NEEDS_ATTENTION; a PENDING or
CANCELLING order younger than the deadline is *in flight* and only the checks that hold at every
moment look at it. A NEEDS_ATTENTION order may still hold money or stock, but only what an
attention record (the compensation DLQ, or a record in MySQL) says it owes. The money rules are
`order_saga.reconciliation.money`'s, which the scheduled ReconcilePayments checks too.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from order_saga.manifest import Step
from order_saga.models import OrderStatus
from order_saga.reconciliation.books import OrderRow
from order_saga.reconciliation.money import (
    SETTLED,
    InvariantResult,
    MoneyContext,
    money_matches_outcome,
    payments_match_ledger,
)
from order_saga.steps.notification import NOTICE_OF, STEP_NAMES, NotificationKind

from .sources import Execution

ANY_SETTLED = SETTLED

# How a closed execution may leave its order. A FAILED execution is judged by its last state;
# an ABORTED or TIMED_OUT one (or a last state not listed) by the other invariants only.
SUCCEEDED_LEAVES = {
    "OrderSaga": {
        OrderStatus.CONFIRMED,
        OrderStatus.CANCELLING,
        OrderStatus.CANCELLED,
        OrderStatus.NEEDS_ATTENTION,
    },
    "OrderCancellation": {OrderStatus.CANCELLED},
}
FAILED_LEAVES = {  # a re-drive or an operator may finish a NEEDS_ATTENTION order later
    ("OrderSaga", "OrderFailed"): {OrderStatus.FAILED},
    ("OrderSaga", "OrderCancelled"): {OrderStatus.CANCELLED},
    ("OrderSaga", "SagaNeedsAttention"): {
        OrderStatus.NEEDS_ATTENTION,
        OrderStatus.FAILED,
        OrderStatus.CANCELLED,
    },
    ("OrderCancellation", "CancellationNeedsAttention"): {OrderStatus.NEEDS_ATTENTION, OrderStatus.CANCELLED},
}

# The machine whose closed execution must not leave its order in this status.
LEFT_BEHIND = {OrderStatus.PENDING: "OrderSaga", OrderStatus.CANCELLING: "OrderCancellation"}

STATUS_VALUES = {status.value for status in OrderStatus}


@dataclass(frozen=True)
class Owed:
    """What a NEEDS_ATTENTION order still holds, by the books, and the records that say so."""

    order_id: str
    refund: Decimal
    units: dict[str, int]
    records: tuple[str, ...]


@dataclass(frozen=True)
class Reclaimed:
    """A notice whose claim was taken over from a consumer that died: had SES accepted that
    consumer's mail, the customer got the notice twice, and saga_log holds only the second SENT."""

    order_id: str
    kind: str
    times: int


@dataclass
class AuditContext(MoneyContext):
    """The money rules' context, with the executions, the deadline and the stock baseline."""

    executions: list[Execution]
    deadline_seconds: float
    stock_baseline: dict[str, int] | None = None

    def in_flight(self) -> list[OrderRow]:
        return [
            order
            for order in self.books.orders.values()
            if order.status not in SETTLED and order.age_seconds <= self.deadline_seconds
        ]

    def held_units(self, order_id: str) -> dict[str, int]:
        units: dict[str, int] = defaultdict(int)
        for row in self.books.reservations.get(order_id, []):
            if row.status in {"RESERVED", "COMMITTED"} and row.quantity:
                units[row.product_id] += row.quantity
        return dict(units)


def orders_end_truthfully(ctx: AuditContext) -> InvariantResult:
    result = InvariantResult(
        "orders end truthfully",
        "every order is CONFIRMED, FAILED or CANCELLED, or NEEDS_ATTENTION with a record; "
        "none PENDING or CANCELLING past the deadline",
    )
    for order in ctx.books.orders.values():
        result.checked += 1
        if order.status not in SETTLED and order.age_seconds > ctx.deadline_seconds:
            held = ctx.entry(order.order_id).net
            units = ctx.held_units(order.order_id)
            result.flag(
                order.order_id,
                f"{order.status} for {order.age_seconds:.0f}s"
                + (f", the gateway holds {held}" if held else "")
                + (f", holds {units}" if units else ""),
            )
        elif order.status is OrderStatus.NEEDS_ATTENTION and not ctx.attention.get(order.order_id):
            result.flag(order.order_id, "NEEDS_ATTENTION without a record of what it owes")
    return result


def reserved_is_live_reservations(ctx: AuditContext) -> InvariantResult:
    result = InvariantResult(
        "reserved = live reservations",
        "per product, inventory.reserved is the sum of RESERVED reservation rows",
    )
    live = ctx.books.live_reserved
    for product, stock in ctx.books.inventory.items():
        result.checked += 1
        if stock.reserved != live.get(product, 0):
            result.flag(product, f"reserved {stock.reserved}, reservations hold {live.get(product, 0)}")
    return result


def no_stock_held_for_settled_orders(ctx: AuditContext) -> InvariantResult:
    result = InvariantResult(
        "stock per order",
        "a CONFIRMED order committed exactly its lines; any other settled order holds no units "
        "unless its record owes the release",
    )
    for order in ctx.settled():
        result.checked += 1
        held = ctx.held_units(order.order_id)
        reserved = {
            row.product_id: row.quantity
            for row in ctx.books.reservations.get(order.order_id, [])
            if row.status == "RESERVED" and row.quantity
        }
        if order.status is OrderStatus.CONFIRMED:
            if reserved or held != order.lines:
                result.flag(order.order_id, f"CONFIRMED with {order.lines} but holds {held}")
        elif order.status is OrderStatus.NEEDS_ATTENTION:
            if held and not ctx.recorded(order.order_id, Step.RELEASE_STOCK):
                result.flag(order.order_id, f"NEEDS_ATTENTION holds {held} with no record owing the release")
        elif held:
            result.flag(order.order_id, f"{order.status} but holds {held}")
    return result


def stock_moves_by_confirmed_quantities(ctx: AuditContext) -> InvariantResult:
    result = InvariantResult(
        "stock = baseline - committed",
        "per product, stock went down by exactly the committed (confirmed) units since the baseline",
    )
    if ctx.stock_baseline is None:
        return result  # nothing checked: no baseline given
    now = ctx.books.stock_baseline()
    for product, before in ctx.stock_baseline.items():
        result.checked += 1
        if now.get(product) != before:
            committed = ctx.books.committed_units.get(product, 0)
            stock = ctx.books.inventory[product].stock if product in ctx.books.inventory else None
            result.flag(product, f"stock {stock} + committed {committed} != baseline {before}")
    return result


def stock_within_bounds(ctx: AuditContext) -> InvariantResult:
    result = InvariantResult("0 <= reserved <= stock", "per product")
    for product, stock in ctx.books.inventory.items():
        result.checked += 1
        if not 0 <= stock.reserved <= stock.stock:
            result.flag(product, f"stock {stock.stock}, reserved {stock.reserved}")
    return result


def executions_agree(ctx: AuditContext) -> InvariantResult:
    result = InvariantResult(
        "executions vs status",
        "no execution RUNNING past the deadline for a settled order; each closed one left its "
        "order as its end says, never PENDING (the saga) or CANCELLING (the cancellation) past the deadline",
    )
    for execution in ctx.executions:
        order = ctx.books.orders.get(execution.order_id)
        if order is None:
            continue  # not an order of these books
        result.checked += 1
        late = order.age_seconds > ctx.deadline_seconds
        end = execution.final_state or execution.status
        if execution.status == "RUNNING":
            if order.status in SETTLED and late:
                result.flag(order.order_id, f"{execution.machine} still RUNNING, order {order.status}")
        elif order.status in SETTLED and order.status not in _allowed_statuses(execution):
            result.flag(order.order_id, f"{execution.machine} ended {end}, order {order.status}")
        elif late and LEFT_BEHIND.get(order.status) == execution.machine:
            result.flag(order.order_id, f"{execution.machine} ended {end}, order left {order.status}")
    return result


def _allowed_statuses(execution: Execution) -> set[OrderStatus]:
    if execution.status == "SUCCEEDED":
        return SUCCEEDED_LEAVES.get(execution.machine, set(ANY_SETTLED))
    if execution.status == "FAILED":
        return FAILED_LEAVES.get((execution.machine, execution.final_state or ""), set(ANY_SETTLED))
    return set(ANY_SETTLED)


def notice_entries(log: list[tuple[str, str]], status: str) -> dict[str, int]:
    """saga_log's entries of `status`, by notice kind: SENT is one per mail SES accepted (the
    notifications table, whose key is (order, kind), cannot show a second one), RECLAIMED one per
    claim taken over from a consumer that died."""
    kinds = {str(step): kind for kind, step in STEP_NAMES.items()}
    counts: dict[str, int] = defaultdict(int)
    for step, entry in log:
        if entry == status and step in kinds:
            counts[kinds[step]] += 1
    return dict(counts)


def notices_sent_once(ctx: AuditContext) -> InvariantResult:
    result = InvariantResult(
        "notifications",
        "at most one e-mail of each kind sent (saga_log), none that contradicts the order, and every "
        "settled order with an e-mail has its notice (or an attention record)",
    )
    for order in ctx.settled():
        result.checked += 1
        log = ctx.books.saga_log.get(order.order_id, [])
        sent = notice_entries(log, "SENT")
        for kind, count in sent.items():
            if count > 1:
                result.flag(order.order_id, f"{kind} sent {count} times")
        if "ORDER_CONFIRMATION" in sent and (Step.CONFIRM_ORDER, "CONFIRMED") not in log:
            result.flag(order.order_id, "ORDER_CONFIRMATION for an order never confirmed")
        wrong = {"FAILURE_ALERT", "CANCELLATION_NOTICE"} & set(sent) - {NOTICE_OF.get(order.status)}
        if wrong and order.status is not OrderStatus.NEEDS_ATTENTION:
            result.flag(order.order_id, f"{', '.join(sorted(wrong))} for a {order.status} order")
        notice = NOTICE_OF.get(order.status)
        if (
            order.email
            and notice
            and notice not in sent
            and not ctx.recorded(order.order_id, f"notice:{notice}")
        ):
            result.flag(order.order_id, f"{order.status} but no {notice} sent or recorded as owed")
    return result


def saga_log_tells_the_story(ctx: AuditContext) -> InvariantResult:
    result = InvariantResult(
        "saga_log story",
        "the last status saga_log records is the order's; every payment, stock and notice change is logged",
    )
    for order in ctx.settled():
        result.checked += 1
        log = ctx.books.saga_log.get(order.order_id, [])
        statuses = [status for _, status in log if status in STATUS_VALUES]
        if not statuses or statuses[-1] != order.status:
            last = statuses[-1] if statuses else "nothing"
            result.flag(order.order_id, f"order {order.status}, saga_log last says {last}")
        missing = [
            " or ".join(f"{step} {status}" for step, status in choices)
            for choices in _expected_entries(ctx, order)
            if not any(choice in log for choice in choices)
        ]
        if missing:
            result.flag(order.order_id, f"not in saga_log: {', '.join(missing)}")
    return result


def _expected_entries(ctx: AuditContext, order: OrderRow) -> list[tuple[tuple[str, str], ...]]:
    """The saga_log entries the order's rows prove happened (each is written with its change);
    each item is satisfied by any one of its entries."""
    expected: list[tuple[tuple[str, str], ...]] = []
    payment = ctx.books.payments.get(order.order_id)
    if payment and payment.status == "SUCCESS":
        expected.append(((Step.PROCESS_PAYMENT, "SUCCEEDED"), (Step.PROCESS_PAYMENT, "LATE_CHARGE")))
    if payment and payment.status == "REFUNDED" and payment.amount:
        expected.append(((Step.REFUND_PAYMENT, "REFUNDED"),))
    if payment and payment.status == "FAILED":
        expected.append(((Step.PROCESS_PAYMENT, "DECLINED"),))
    rows = [row for row in ctx.books.reservations.get(order.order_id, []) if row.quantity]
    if rows:
        expected.append(((Step.RESERVE_STOCK, "RESERVED"),))
    if any(row.status == "RELEASED" for row in rows):
        expected.append(((Step.RELEASE_STOCK, "RELEASED"),))
    if any(row.status == "COMMITTED" for row in rows):
        expected.append(((Step.CONFIRM_ORDER, "CONFIRMED"),))
    sent = ctx.books.notifications.get(order.order_id, {})
    expected += [((STEP_NAMES[NotificationKind(kind)], "SENT"),) for kind in sent]
    return expected


INVARIANTS: tuple[Callable[[AuditContext], InvariantResult], ...] = (
    orders_end_truthfully,
    money_matches_outcome,
    payments_match_ledger,
    reserved_is_live_reservations,
    no_stock_held_for_settled_orders,
    stock_moves_by_confirmed_quantities,
    stock_within_bounds,
    executions_agree,
    notices_sent_once,
    saga_log_tells_the_story,
)


def owed_by_attention_orders(ctx: AuditContext) -> list[Owed]:
    return [
        Owed(
            order.order_id,
            max(ctx.entry(order.order_id).net, Decimal(0)),
            ctx.held_units(order.order_id),
            tuple(sorted({record.source for record in ctx.attention.get(order.order_id, [])})),
        )
        for order in ctx.settled()
        if order.status is OrderStatus.NEEDS_ATTENTION
    ]


def reclaimed_notices(ctx: AuditContext) -> list[Reclaimed]:
    return [
        Reclaimed(order_id, kind, times)
        for order_id, log in ctx.books.saga_log.items()
        for kind, times in sorted(notice_entries(log, "RECLAIMED").items())
    ]
