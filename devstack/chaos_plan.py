"""The chaos campaign's plan: a pure function of (seed, orders, clients), so a seed replays.

What an order does (its lines, its card, whether its client repeats, cancels or an operator stops
it, whether a Lambda fault is aimed at its saga's first step), which Lambda faults are switched on
before which order, and which infrastructure fault happens before which order. Outcomes still
depend on timing; the plan does not. What must happen in every campaign does not depend on it
either: an aimed fault or an operator's stop meets its saga held at its first step.
"""

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from order_saga.functions import FUNCTIONS

from .faults import FaultKind

# The campaign's own products: two hot ones with few units, three with plenty.
HOT = ("chaos-hot-1", "chaos-hot-2")
PLENTY = ("chaos-book", "chaos-pen", "chaos-lamp")
PRICES = {
    "chaos-hot-1": "19.90",
    "chaos-hot-2": "7.25",
    "chaos-book": "12.50",
    "chaos-pen": "1.20",
    "chaos-lamp": "45.00",
}
PLENTY_STOCK = 100_000


def hot_stock(orders: int) -> int:
    """Units of each hot product: far fewer than the orders that want them."""
    return max(2, orders // 25)


# Gateway trouble of one order, by the gateway server's test tokens: down for a few attempts, slow, or the
# charge lands and its answer is lost.
GATEWAY_TROUBLE: dict[str, Callable[[random.Random], str]] = {
    "gateway-unavailable": lambda rng: f"tok_unavailable_{rng.randint(1, 4)}",
    "gateway-slow": lambda rng: f"tok_slow_{rng.choice([300, 1500, 4000, 25000])}",
    "gateway-answer-lost": lambda _rng: "tok_lostAnswer",
}
# Errors a Lambda fault reports: two transient ones the state machines retry, one they do not.
ERROR_TYPES = ("DatabaseUnavailable", "Lambda.ServiceException", "InjectedFailure")
INFRA_KINDS = (
    "edge-kill",
    "mariadb-restart",
    "mariadb-failover",
    "redis-restart",
    "redis-failover",
    "redis-flush",
    "gateway-restart",
    "gateway-key-rotation",
    "gateway-409-storm",
    "gateway-429-storm",
    "gateway-503-storm",
)
CANCEL_MOMENTS = ("pending", "mid-flight", "after-confirmation")
# Every saga's first step, which every order's saga certainly calls: an aimed fault or an
# operator's stop meets the saga there (the campaign holds it while it creates the order).
FIRST_STEP = "ProcessPayment"
# The Lambda faults aimed at one order's first step, one order each in every campaign: the error is
# a transient one, so its saga retries the step.
AIMED: dict[str, dict[str, Any]] = {
    "error": {"kind": "error", "error_type": "DatabaseUnavailable"},
    "delay": {"kind": "delay", "delay_seconds": 0.5},
    "duplicate": {"kind": "duplicate"},
}
DECLINED = "tok_chargeDeclined"  # the gateway server's always-declined card


@dataclass(frozen=True)
class OrderPlan:
    index: int
    client: int
    items: dict[str, int]
    token: str
    trouble: str | None  # the gateway trouble its token asks for, if any
    duplicate_create: bool
    cancel: str | None  # one of CANCEL_MOMENTS
    cancel_delay: float  # seconds after the create, for a mid-flight cancel
    stop_execution: bool  # an operator stops its saga, held at its first step
    aimed_fault: str | None = None  # one of AIMED, aimed at its saga's first step

    def kinds(self) -> list[str]:
        """What this order stands for in the injection counts."""
        kinds = ["business:declined-card" if self.token == DECLINED else "business:good-card"]
        if any(product in HOT for product in self.items):
            kinds.append("business:hot-product")
        if len(self.items) > 1:
            kinds.append("business:multi-line")
        if self.trouble:
            kinds.append(self.trouble)
        if self.duplicate_create:
            kinds.append("client:duplicate-create")
        if self.cancel:
            kinds.append(f"client:cancel-{self.cancel}")
        if self.stop_execution:
            kinds.append("client:stop-execution")
        if self.aimed_fault:
            kinds.append(f"lambda-aimed:{self.aimed_fault}")
        return kinds


@dataclass(frozen=True)
class FaultEvent:
    before_order: int
    fault: dict[str, Any]  # the fields of a devstack.faults.Fault


@dataclass(frozen=True)
class InfraEvent:
    before_order: int
    kind: str  # one of INFRA_KINDS


@dataclass(frozen=True)
class CampaignPlan:
    seed: int
    orders: int
    clients: int
    lines: list[OrderPlan] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    infra: list[InfraEvent] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def planned(self) -> dict[str, int]:
        """What the plan asks for, counted by kind."""
        counts: dict[str, int] = {}

        def add(kind: str, n: int = 1) -> None:
            counts[kind] = counts.get(kind, 0) + n

        for line in self.lines:
            for kind in line.kinds():
                add(kind)
        for event in self.infra:
            add(f"infra:{event.kind}")
        return counts


def make_plan(seed: int, orders: int, clients: int) -> CampaignPlan:
    rng = random.Random(seed)  # noqa: S311 - chaos, not cryptography
    plan = CampaignPlan(seed, orders, clients)
    for index in range(orders):
        plan.lines.append(_order(rng, index, clients))
    plan.faults.extend(_lambda_faults(rng, orders))
    plan.infra.extend(_infra(rng, orders, clients))
    _ensure_one_of_each(rng, plan)
    return plan


def _order(rng: random.Random, index: int, clients: int) -> OrderPlan:
    products = list(rng.sample(PLENTY, rng.choice([1, 1, 2, 3])))
    if rng.random() < 0.3:
        products[0] = rng.choice(HOT)
    items = {product: rng.randint(1, 2) if product in HOT else rng.randint(1, 5) for product in products}
    draw, trouble, token = rng.random(), None, "tok_visa"
    if draw < 0.1:
        token = DECLINED
    elif draw < 0.1 + 0.06 * len(GATEWAY_TROUBLE):
        trouble = rng.choice(sorted(GATEWAY_TROUBLE))
        token = GATEWAY_TROUBLE[trouble](rng)
    cancel = rng.choice(CANCEL_MOMENTS) if rng.random() < 0.12 else None
    return OrderPlan(
        index=index,
        client=index % clients,
        items=items,
        token=token,
        trouble=trouble,
        duplicate_create=rng.random() < 0.1,
        cancel=cancel,
        cancel_delay=round(rng.uniform(0.1, 3.0), 2),
        stop_execution=cancel is None and rng.random() < 0.015,
    )


def aimed_fault(order_id: str, kind: str) -> dict[str, Any]:
    """The fields of a fault of this kind (of AIMED) for the order's first step, once."""
    return {"function": FIRST_STEP, "order_id": order_id, "times": 1, **AIMED[kind]}


def _lambda_fault(rng: random.Random, function: str, kind: FaultKind) -> dict[str, Any]:
    fault: dict[str, Any] = {"function": function, "kind": kind.value, "times": rng.randint(1, 3)}
    if kind is FaultKind.ERROR:
        fault["error_type"] = rng.choice(ERROR_TYPES)
    elif kind is FaultKind.DELAY:
        fault["delay_seconds"] = round(rng.uniform(0.3, 3.0), 2)
    elif kind is FaultKind.TIMEOUT:
        fault["times"] = 1  # each one holds an invocation for the function's whole timeout
    if rng.random() < 0.3:
        fault["probability"] = 0.5
    return fault


CHAOS_KINDS = (FaultKind.ERROR, FaultKind.TIMEOUT, FaultKind.DUPLICATE, FaultKind.DELAY)


def _lambda_faults(rng: random.Random, orders: int) -> list[FaultEvent]:
    """Every function gets faults, and every kind appears: one per function (kinds in turn),
    then about one more per 40 orders, anywhere."""
    events = []
    offset = rng.randrange(len(CHAOS_KINDS))
    for number, spec in enumerate(FUNCTIONS):
        kind = CHAOS_KINDS[(number + offset) % len(CHAOS_KINDS)]
        events.append(FaultEvent(rng.randrange(orders), _lambda_fault(rng, spec.name, kind)))
    for _ in range(orders // 40):
        spec, kind = rng.choice(FUNCTIONS), rng.choice(CHAOS_KINDS)
        events.append(FaultEvent(rng.randrange(orders), _lambda_fault(rng, spec.name, kind)))
    return sorted(events, key=lambda event: event.before_order)


def _infra(rng: random.Random, orders: int, clients: int) -> list[InfraEvent]:
    """Each infrastructure fault once, mid-run, in a seeded order (more of them on long runs).

    Each comes before an order of the first client, whose thread runs it: so they run one at a
    time, as outages do. Two at once (a flush in the middle of a restart) would fail the campaign's
    own disturbance, not test the saga."""
    first_clients = range(clients, orders, clients)  # its orders after its first
    middle = [index for index in first_clients if orders // 5 <= index < 4 * orders // 5]
    slots = middle or list(first_clients) or [0]
    events: list[InfraEvent] = []
    for _ in range(max(1, orders // 400)):
        if len(slots) >= len(INFRA_KINDS):  # apart where there is room
            places = rng.sample(slots, len(INFRA_KINDS))
        else:
            places = rng.choices(slots, k=len(INFRA_KINDS))
        events.extend(InfraEvent(place, kind) for place, kind in zip(places, INFRA_KINDS, strict=True))
    return sorted(events, key=lambda event: event.before_order)


def _ensure_one_of_each(rng: random.Random, plan: CampaignPlan) -> None:
    """A campaign of any size has at least one of each business outcome, gateway trouble, client
    action and aimed Lambda fault (the seeded draw may miss one on a short run): a missing one is
    set on an order chosen by the same generator, until none is missing."""
    for _ in range(50):
        fix = _missing(rng, plan.planned())
        if fix is None or not plan.lines:
            return
        index = rng.randrange(len(plan.lines))
        plan.lines[index] = OrderPlan(**asdict(plan.lines[index]) | fix)


def _missing(rng: random.Random, planned: dict[str, int]) -> dict[str, Any] | None:
    """The change to one order that adds the first kind the plan lacks (None: nothing lacks)."""
    fixes: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        *(
            (trouble, lambda trouble=trouble, token=token: {"trouble": trouble, "token": token(rng)})
            for trouble, token in GATEWAY_TROUBLE.items()
        ),
        ("business:declined-card", lambda: {"token": DECLINED, "trouble": None}),
        ("business:multi-line", lambda: {"items": {"chaos-book": 1, "chaos-pen": 2}}),
        ("business:hot-product", lambda: {"items": {HOT[0]: 1}}),
        ("client:duplicate-create", lambda: {"duplicate_create": True}),
        *(
            (f"client:cancel-{moment}", lambda moment=moment: {"cancel": moment, "stop_execution": False})
            for moment in CANCEL_MOMENTS
        ),
        ("client:stop-execution", lambda: {"stop_execution": True, "cancel": None, "aimed_fault": None}),
        *(
            (f"lambda-aimed:{kind}", lambda kind=kind: {"aimed_fault": kind, "stop_execution": False})
            for kind in AIMED
        ),
    ]
    for kind, fix in fixes:
        if not planned.get(kind):
            return fix()
    return None


def unit_price(product: str) -> Decimal:
    return Decimal(PRICES[product])
