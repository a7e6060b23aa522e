"""`make demo`: the main job, end to end, through the gRPC API of the running local stack.

Each scenario creates orders as a client would (a dev token, a real channel), follows them with
WatchOrder until they stop moving, and states what it expects. The demo prints every order with
its final status and the path its execution took, and fails when any outcome is not the expected
one, so it doubles as a smoke test of a fresh machine.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import grpc

from grpc_edge.channel import open_channel
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from order_ops.executions import executions_of_order, path_of
from order_saga.cache import create_redis
from order_saga.catalog import set_product
from order_saga.db import Database
from order_saga.manifest import Step
from order_saga.models import ReservationStatus
from order_saga.repository import fetch_reservations
from order_saga.settings import Settings

from . import faults
from .issuer.process import local_issuer

WATCH_SECONDS = 120
TERMINAL = {
    pb.ORDER_STATUS_CONFIRMED,
    pb.ORDER_STATUS_FAILED,
    pb.ORDER_STATUS_CANCELLED,
    pb.ORDER_STATUS_NEEDS_ATTENTION,
}


def status_name(status: int) -> str:
    return pb.OrderStatus.Name(status).removeprefix("ORDER_STATUS_")  # type: ignore[arg-type]


@dataclass
class Outcome:
    scenario: str
    order_id: str
    expected: str
    status: str = "?"
    reason: str = ""
    seen: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == self.expected


class Client:
    """The demo's gRPC client: one channel, one user, a fresh token per call."""

    def __init__(self, address: str, user: str) -> None:
        self.channel = open_channel(address)
        self.stub = orders_pb2_grpc.OrderServiceStub(self.channel)
        self.user = user

    def _metadata(self) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {local_issuer().customer_token(self.user)}"),)

    def create(self, items: dict[str, int], pay_with: str = "tok_visa", key: str | None = None) -> pb.Order:
        request = pb.CreateOrderRequest(
            idempotency_key=key or str(uuid.uuid4()),
            items=[
                pb.OrderItem(product_id=product, quantity=quantity) for product, quantity in items.items()
            ],
            payment_token=pay_with,
            email=f"{self.user}@example.com",
        )
        return self.stub.CreateOrder(request, metadata=self._metadata(), timeout=10).order

    def cancel(self, order_id: str) -> pb.Order:
        request = pb.CancelOrderRequest(order_id=order_id, reason="changed my mind")
        return self.stub.CancelOrder(request, metadata=self._metadata(), timeout=10)

    def follow(self, outcome: Outcome) -> Outcome:
        """WatchOrder until the order stops moving; record every status it showed."""
        stream = self.stub.WatchOrder(
            pb.WatchOrderRequest(order_id=outcome.order_id), metadata=self._metadata(), timeout=WATCH_SECONDS
        )
        for order in stream:
            if not outcome.seen or outcome.seen[-1] != status_name(order.status):
                outcome.seen.append(status_name(order.status))
            outcome.status, outcome.reason = status_name(order.status), order.failure_reason
            if order.status in TERMINAL:
                break
        return outcome


class Demo:
    def __init__(self, address: str, settings: Settings) -> None:
        self.client = Client(address, "demo-user")
        self.settings = settings
        self.database = Database(settings)
        self.cache = create_redis(settings)

    def set_stock(self, product_id: str, stock: int, price: str) -> None:
        set_product(
            self.database,
            self.cache,
            product_id=product_id,
            stock=stock,
            unit_price=Decimal(price),
            currency="EUR",
        )

    def good_order(self) -> Iterator[Outcome]:
        order = self.client.create({"book": 2, "pen": 3})
        yield self.client.follow(Outcome("a good order", order.order_id, "CONFIRMED"))

    def declined_card(self) -> Iterator[Outcome]:
        order = self.client.create({"book": 1}, pay_with="tok_chargeDeclined")
        yield self.client.follow(Outcome("a declined card", order.order_id, "FAILED"))

    def gateway_briefly_down(self) -> Iterator[Outcome]:
        order = self.client.create({"pen": 1}, pay_with="tok_unavailable_2")
        yield self.client.follow(Outcome("the gateway down twice", order.order_id, "CONFIRMED"))

    def last_lamp(self) -> Iterator[Outcome]:
        """Two buyers, one lamp: both pass the edge's check, one saga reserves it, the other is out
        of stock. ReserveStock is held until both orders are in (a hold fault of the local stack),
        so both always reach the race; whichever reserves first gets the lamp, never both."""
        self.set_stock("lamp", 1, "45.00")
        hold = faults.make_fault(function=Step.RESERVE_STOCK, kind="hold")
        faults.add_fault(hold)
        try:
            orders = [self.client.create({"lamp": 1}) for _ in range(2)]
        finally:
            faults.clear_faults(Step.RESERVE_STOCK)
        followed = [self.client.follow(Outcome("", order.order_id, "")) for order in orders]
        followed.sort(key=lambda outcome: outcome.status != "CONFIRMED")
        followed[0].scenario, followed[0].expected = "the last lamp, the buyer who reserved it", "CONFIRMED"
        followed[1].scenario, followed[1].expected = "the last lamp, the other buyer (out of stock)", "FAILED"
        yield from followed
        self.set_stock("lamp", 10, "45.00")

    def cancel_confirmed(self) -> Iterator[Outcome]:
        order = self.client.create({"book": 1})
        confirmed = self.client.follow(Outcome("", order.order_id, "CONFIRMED"))
        if not confirmed.ok:  # nothing to cancel: say so, rather than fail on CancelOrder's answer
            yield Outcome(
                "a confirmed order, cancelled",
                order.order_id,
                "CANCELLED",
                confirmed.status,
                f"never confirmed: {confirmed.reason}",
                confirmed.seen,
            )
            return
        self.client.cancel(order.order_id)
        cancelled = self.client.follow(Outcome("a confirmed order, cancelled", order.order_id, "CANCELLED"))
        cancelled.seen = confirmed.seen + cancelled.seen
        yield cancelled

    def idempotent_retry(self) -> Iterator[Outcome]:
        key = str(uuid.uuid4())
        first = self.client.create({"pen": 2}, key=key)
        again = self.client.create({"pen": 2}, key=key)
        outcome = Outcome("an idempotent retry (same key twice)", first.order_id, "CONFIRMED")
        if again.order_id != first.order_id:
            outcome.reason = f"the retry made a second order {again.order_id}"
            yield outcome
            return
        try:
            self.client.create({"pen": 3}, key=key)
            outcome.reason = "the same key with another body was accepted"
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.ALREADY_EXISTS:
                raise
        yield self.client.follow(outcome) if not outcome.reason else outcome

    def scenarios(self) -> list[Callable[[], Iterator[Outcome]]]:
        return [
            self.good_order,
            self.declined_card,
            self.gateway_briefly_down,
            self.last_lamp,
            self.cancel_confirmed,
            self.idempotent_retry,
        ]

    def left_reserved(self, outcomes: list[Outcome]) -> list[str]:
        """The demo's own orders that still hold reserved units (other orders are not its business)."""
        with self.database.transaction() as cursor:
            return [
                outcome.order_id
                for outcome in outcomes
                if any(
                    reservation.status is ReservationStatus.RESERVED
                    for reservation in fetch_reservations(cursor, outcome.order_id)
                )
            ]


def describe_paths(order_id: str) -> list[str]:
    sfn = boto3.client("stepfunctions")
    lines = []
    for arn in executions_of_order(sfn, order_id):
        path = path_of(sfn, arn)
        steps = " > ".join(
            visit.name + (f" ({visit.retries} retries)" if visit.retries else "") for visit in path.visits
        )
        lines.append(f"    {path.machine}: {steps}  [{path.status}, {path.transitions} transitions]")
    return lines


def table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]


def run_demo(address: str, settings: Settings, echo: Callable[[str], Any] = print) -> bool:
    """Run every scenario, print the orders and their paths; True when every outcome is right."""
    demo = Demo(address, settings)
    started = time.monotonic()
    outcomes = [outcome for scenario in demo.scenarios() for outcome in scenario()]
    rows = [["scenario", "order", "statuses seen", "expected", "final", "ok"]]
    rows += [
        [o.scenario, o.order_id[:8], " > ".join(o.seen), o.expected, o.status, "yes" if o.ok else "NO"]
        for o in outcomes
    ]
    for line in table(rows):
        echo(line)
    echo("")
    echo("execution paths:")
    for outcome in outcomes:
        reason = f" ({outcome.reason})" if outcome.reason else ""
        echo(f"  {outcome.order_id} {outcome.scenario}{reason}")
        for line in describe_paths(outcome.order_id):
            echo(line)
    holding = demo.left_reserved(outcomes)
    echo("")
    echo(
        "stock: no unit left reserved by the demo's orders"
        if not holding
        else f"stock: UNITS LEFT RESERVED by {', '.join(holding)}"
    )
    passed = all(o.ok for o in outcomes) and not holding
    elapsed = time.monotonic() - started
    echo(f"{sum(o.ok for o in outcomes)} of {len(outcomes)} outcomes as expected in {elapsed:.1f}s")
    return passed
