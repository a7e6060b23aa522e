"""The chaos campaign: N orders through the running stack by C clients while faults combine.

It follows a seeded plan (`chaos_plan.py`): business outcomes, Lambda faults for every function
through the invoker's fault plan, gateway trouble from the gateway server itself (its test
tokens: unavailable for a few attempts, slow, the answer lost after the charge; and storms of
409, 429 and 503 answers, its key rotated with no grace, the server restarted), client actions
(duplicate creates, cancels at any moment, an operator's StopExecution) and infrastructure
faults (the edge SIGKILLed and restarted, MariaDB and Redis restarted or down for a failover's
length, Redis flushed). Then
it clears its faults (the gateway's too), waits (bounded) until nothing is in flight, and runs
the books auditor over its own orders. The stack is left as it was found: running, with the
fault plan it had.

The Lambda faults aimed at one order and the operator's stops happen however fast the machine is:
the order is created while every saga's first step is held, and its fault is aimed (or its
execution stopped) before the hold is released. The report counts them by what happened to the
saga: an aimed fault used up by its order (an aimed error also retried in its execution), a stop
whose execution was RUNNING, ended ABORTED, and whose order the watchdog ended FAILED.

Redis is only our cache: "Redis restarted" and "Redis flushed" lose every key in it. The gateway
keeps its books in a store of its own, which its restart keeps, as a real gateway's outage does.
"""

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import urllib3
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from grpc_edge.channel import open_channel
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from order_ops.audit import AuditReport
from order_ops.executions import path_of
from order_saga.errors import OrderSagaError
from order_saga.workflow import execution_arn_for

from . import faults
from .chaos_plan import (
    FIRST_STEP,
    HOT,
    PLENTY_STOCK,
    PRICES,
    CampaignPlan,
    InfraEvent,
    OrderPlan,
    aimed_fault,
    hot_stock,
)
from .chaos_stack import (
    ChaosStack,
    call_edge,
    first_steps_held,
    order_statuses,
    ride_out_failover,
    settle,
    stock_the_catalog,
    stop_execution,
)
from .commands_gateway import rotate_gateway_key
from .services import ServiceError, port_in_use

WATCH_SECONDS = 180.0  # how long a client waits for an order to settle before cancelling it
POLL_SECONDS = 0.25  # between a client's GetOrder calls while it waits: most sagas end within a second
TERMINAL = {
    pb.ORDER_STATUS_CONFIRMED,
    pb.ORDER_STATUS_FAILED,
    pb.ORDER_STATUS_CANCELLED,
    pb.ORDER_STATUS_NEEDS_ATTENTION,
}


# A storm of one kind of the gateway's answers, before execution: the next N requests meet it.
GATEWAY_STORM = 12
GATEWAY_STORMS = {
    "gateway-409-storm": {"kind": "in_flight"},
    "gateway-429-storm": {"kind": "rate_limit"},
    "gateway-503-storm": {"kind": "unavailable"},
}


@dataclass
class CampaignResult:
    plan: CampaignPlan
    duration_seconds: float
    settle_seconds: float  # of the duration, the wait for the last sagas, watchdog passes and notices
    injections: dict[str, int]
    outcomes: dict[str, int]
    client_violations: list[str]
    settled: bool
    audit: AuditReport
    order_ids: list[str]

    @property
    def ok(self) -> bool:
        return self.audit.ok and not self.client_violations and self.settled

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seed": self.plan.seed,
            "orders": self.plan.orders,
            "clients": self.plan.clients,
            "duration_seconds": round(self.duration_seconds, 1),
            "settle_seconds": round(self.settle_seconds, 1),
            "settled": self.settled,
            "injections": dict(sorted(self.injections.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "client_violations": self.client_violations,
            "offending_orders": self.audit.offending_orders(),
            "audit": self.audit.as_json(limit=50),
            "plan": self.plan.as_json(),
        }

    def render(self) -> list[str]:
        lines = [
            f"chaos campaign: seed {self.plan.seed}, {self.plan.orders} orders, {self.plan.clients} clients, "
            f"{self.duration_seconds:.0f}s ({self.settle_seconds:.0f}s of it settling)"
        ]
        lines.append("injected:")
        lines += [f"  {kind:<40} {count:>5}" for kind, count in sorted(self.injections.items())]
        lines.append("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items())))
        lines += self.audit.render()
        if not self.settled:
            lines.append("the stack did not settle within the wait: executions or notices still in flight")
        lines += [f"client violation: {violation}" for violation in self.client_violations]
        if not self.ok:
            lines.append(
                f"FAILED: seed {self.plan.seed}; offending: {', '.join(self.audit.offending_orders()[:30])}"
            )
        return lines


class Campaign:
    def __init__(self, plan: CampaignPlan, stack: ChaosStack, echo: Callable[[str], Any] = print) -> None:
        self.plan = plan
        self.stack = stack
        self.echo = echo
        self.injections: Counter[str] = Counter()
        self.violations: list[str] = []
        self.order_ids: list[str] = []
        self._aimed: dict[str, tuple[str, faults.Fault]] = {}  # order id -> its aimed kind and fault
        self._stopped: dict[str, str] = {}  # order id -> its execution's status when it was stopped
        self._lock = threading.Lock()

    # -- the run ----------------------------------------------------------------------------

    def run(self, settle_timeout: float = 600.0) -> CampaignResult:
        began = time.monotonic()
        previous_plan = self.stack.faults_file.read_text() if self.stack.faults_file.exists() else ""
        baseline, since = stock_the_catalog(
            self.stack.settings,
            {p: hot_stock(self.plan.orders) if p in HOT else PLENTY_STOCK for p in PRICES},
        )
        try:
            # What is planned before the first order is in place before any client starts: a
            # client with a later order must not run ahead of it.
            self._before(0)
            threads = [
                # daemon: an interrupted campaign still restores the fault plan and exits
                threading.Thread(
                    target=self._client, args=(client,), name=f"chaos-client-{client}", daemon=True
                )
                for client in range(self.plan.clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            left = faults.read_plan(self.stack.faults_file).faults
            self._count_fired_faults(left)
            faults.replace_plan(previous_plan, "the fault plan before the campaign", self.stack.faults_file)
            if self.plan.infra:  # what an infrastructure fault stopped is running again
                self._ensure_running()
                self.stack.gateway.clear_faults()  # a storm's answers not yet given
        clients_done = time.monotonic()
        settled = settle(self.stack, self.order_ids, settle_timeout, self.echo)
        settle_seconds = time.monotonic() - clients_done
        self._count_what_happened_to_the_sagas(left)
        report = self.stack.audit(deadline_seconds=0.0, stock_baseline=baseline, since=since)
        return CampaignResult(
            self.plan,
            time.monotonic() - began,
            settle_seconds,
            dict(self.injections),
            self._outcomes(),
            self.violations,
            settled,
            report,
            self.order_ids,
        )

    def _client(self, client: int) -> None:
        channel = open_channel(self.stack.address)
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        user = f"chaos-{self.plan.seed}-{client}"
        try:
            for line in self.plan.lines:
                if line.client == client:
                    if line.index:
                        self._before(line.index)
                    self._order(stub, user, line)
        except Exception as exc:
            self._violation(f"client {client} stopped: {type(exc).__name__}: {exc}")
        finally:
            channel.close()

    def _before(self, index: int) -> None:
        """Switch on the faults planned before this order; run its infrastructure faults."""
        for event in self.plan.faults:
            if event.before_order == index:
                fault = faults.make_fault(**event.fault)
                faults.add_fault(fault, self.stack.faults_file)
                if fault.times is None:  # fires on every call: how often is not counted
                    self._count(f"lambda:{fault.function}:{fault.kind.value}:always")
                else:
                    self._count(f"lambda-planned:{fault.function}:{fault.kind.value}", fault.times)
        for infra in self.plan.infra:
            if infra.before_order == index:
                self._infra(infra)

    # -- one order --------------------------------------------------------------------------

    def _order(self, stub: Any, user: str, line: OrderPlan) -> None:
        request = pb.CreateOrderRequest(
            idempotency_key=f"chaos-{self.plan.seed}-{line.index}-{uuid.uuid4().hex[:8]}",
            items=[pb.OrderItem(product_id=p, quantity=q) for p, q in sorted(line.items.items())],
            payment_token=line.token,
            email=f"{user}@example.com",
        )
        created = self._create(stub, request, user, line)
        if created is None:
            return  # refused (sold out at the edge, for instance): a business outcome
        order_id = created.order.order_id
        with self._lock:
            self.order_ids.append(order_id)
        self._count_line(line)
        if line.duplicate_create:
            again = self._call(stub.CreateOrder, request, user, f"order {order_id} duplicate CreateOrder")
            if again is not None and again.order.order_id != order_id:
                self._violation(
                    f"order {order_id}: the same key created a second order {again.order.order_id}"
                )
        if line.stop_execution:
            return  # stopped as it was created; nothing moves it on until a watchdog does
        if line.cancel == "pending":
            self._cancel(stub, user, order_id)
        elif line.cancel == "mid-flight":
            time.sleep(line.cancel_delay)
            self._cancel(stub, user, order_id)
        elif (
            line.cancel == "after-confirmation"
            and self._wait_settled(stub, user, order_id) == pb.ORDER_STATUS_CONFIRMED
        ):
            self._cancel(stub, user, order_id)
        # The client follows its order to its end, so the faults switched on meanwhile hit it.
        self._wait_settled(stub, user, order_id)

    def _create(self, stub: Any, request: Any, user: str, line: OrderPlan) -> Any:
        """CreateOrder; for an order whose saga a fault is aimed at or an operator stops, while
        every saga's first step is held, so that its saga cannot get past that step before the
        fault is aimed at it or the saga is stopped."""
        what = f"order {line.index} CreateOrder"
        if not (line.aimed_fault or line.stop_execution):
            return self._call(stub.CreateOrder, request, user, what)
        with first_steps_held(self.stack.faults_file):
            created = self._call(stub.CreateOrder, request, user, what)
            if created is not None:
                self._aim(created.order.order_id, line)
            return created

    def _aim(self, order_id: str, line: OrderPlan) -> None:
        """Aim the order's fault at its held first step; or stop its saga, whose held step then
        does nothing (it neither charges nor reports to the stopped execution)."""
        if line.stop_execution:
            status = stop_execution(self.stack, order_id)
            with self._lock:
                self._stopped[order_id] = status
            fields = {"function": FIRST_STEP, "kind": "skip", "times": 1, "order_id": order_id}
        else:
            assert line.aimed_fault is not None  # one of the two, or it was not held
            fields = aimed_fault(order_id, line.aimed_fault)
        fault = faults.make_fault(**fields)
        faults.add_fault(fault, self.stack.faults_file, first=True)
        if line.aimed_fault:
            with self._lock:
                self._aimed[order_id] = (line.aimed_fault, fault)

    def _count_line(self, line: OrderPlan) -> None:
        for kind in line.kinds():
            # An aimed fault or a stop counts once the saga shows it happened.
            if not kind.startswith(("lambda-aimed:", "client:stop-execution")):
                self._count(kind)

    def _call(self, method: Any, request: Any, user: str, what: str) -> Any:
        """One RPC through the edge (retried through outages). None when the edge refused it for a
        business reason; INTERNAL or UNKNOWN is a violation."""
        answer = call_edge(self.stack, method, request, user, what)
        if answer.violation:
            self._violation(answer.violation)
        elif answer.refused:
            self._count(f"edge-refused:{answer.refused.name}")
        return answer.reply

    def _cancel(self, stub: Any, user: str, order_id: str) -> None:
        self._call(
            stub.CancelOrder,
            pb.CancelOrderRequest(order_id=order_id, reason="chaos"),
            user,
            f"order {order_id} CancelOrder",
        )

    def _wait_settled(self, stub: Any, user: str, order_id: str) -> int:
        deadline = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < deadline:
            order = self._call(
                stub.GetOrder, pb.GetOrderRequest(order_id=order_id), user, f"order {order_id} GetOrder"
            )
            if order is None or order.status in TERMINAL:
                return int(order.status) if order is not None else pb.ORDER_STATUS_UNSPECIFIED
            time.sleep(POLL_SECONDS)
        return pb.ORDER_STATUS_UNSPECIFIED

    # -- infrastructure ---------------------------------------------------------------------

    def _infra(self, event: InfraEvent) -> None:
        self.echo(f"  infrastructure fault: {event.kind} (before order {event.before_order})")
        try:
            self._disturb(event.kind)
        except (ServiceError, redis.RedisError, OrderSagaError, urllib3.exceptions.HTTPError) as exc:
            self._violation(f"{event.kind} failed: {type(exc).__name__}: {exc}")
        self._count(f"infra:{event.kind}")

    def _disturb(self, kind: str) -> None:
        if kind == "edge-kill":
            pid = self.stack.edge.pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
                while port_in_use(self.stack.edge.port) and time.monotonic() < deadline:
                    time.sleep(0.1)  # the kernel closes a killed process's sockets a moment later
            self.stack.edge.start()
        elif kind == "mariadb-restart":
            self.stack.mariadb.stop()
            self.stack.mariadb.start()
        elif kind in {"mariadb-failover", "redis-failover"}:
            server = self.stack.mariadb if kind == "mariadb-failover" else self.stack.redis_server
            ride_out_failover(server, self.stack.retry_time_scale)
        elif kind == "redis-restart":
            self.stack.redis_server.stop()
            self.stack.redis_server.start()
        elif kind == "redis-flush":
            self._redis().flushdb()
        elif kind == "gateway-restart":
            self.stack.gateway.stop()
            self.stack.gateway.start()
        elif kind == "gateway-key-rotation":  # no grace: every cached key is refused at once
            rotate_gateway_key(self.stack.settings, self.stack.secrets, grace_seconds=0)
        else:
            self.stack.gateway.add_fault(GATEWAY_STORMS[kind] | {"count": GATEWAY_STORM})

    def _redis(self) -> redis.Redis:
        """The campaign's own client; it retries through a blip, as an operator's script would, so
        a disturbance is not lost to the load it runs under."""
        return redis.Redis.from_url(
            self.stack.settings.redis_url,
            retry=Retry(ExponentialBackoff(cap=1.0), retries=5),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )

    def _ensure_running(self) -> None:
        for server in (self.stack.mariadb, self.stack.redis_server, self.stack.gateway, self.stack.edge):
            server.start()  # harmless when running

    # -- the end ----------------------------------------------------------------------------

    def _count_fired_faults(self, plan_left: list[faults.Fault]) -> None:
        """A fault's `times` counts down as it fires: what is left of the campaign's did not fire."""
        left: Counter[str] = Counter()
        for fault in plan_left:
            if fault.order_id is None:  # the aimed ones are counted by their orders
                left[f"{fault.function}:{fault.kind.value}"] += fault.times or 0
        for key, planned in list(self.injections.items()):
            if key.startswith("lambda-planned:"):
                name = key.removeprefix("lambda-planned:")
                fired = planned - min(planned, left[name])
                left[name] -= min(planned, left[name])
                del self.injections[key]
                if fired:
                    self.injections[f"lambda:{name}"] += fired

    def _count_what_happened_to_the_sagas(self, plan_left: list[faults.Fault]) -> None:
        """An aimed fault counts when its order used it up (an aimed error also when its execution
        met it and retried the step); a stop when the execution was RUNNING, is ABORTED, and its
        order ended FAILED (by the watchdog: the saga never got past its first step)."""
        outcome = self._statuses()
        for order_id, (kind, fault) in sorted(self._aimed.items()):
            if fault not in plan_left and (kind != "error" or self._retried_first_step(order_id, fault)):
                self._count(f"lambda-aimed:{kind}")
        for order_id, before in sorted(self._stopped.items()):
            arn = execution_arn_for(self.stack.saga_arn, order_id)
            now = self.stack.sfn.describe_execution(executionArn=arn)["status"]
            if (before, now, outcome.get(order_id)) == ("RUNNING", "ABORTED", "FAILED"):
                self._count("client:stop-execution")
            else:
                self._count("client:stop-execution-not-seen")
                self.echo(f"  order {order_id}: stopped while {before}, now {now}, {outcome.get(order_id)}")

    def _retried_first_step(self, order_id: str, fault: faults.Fault) -> bool:
        path = path_of(self.stack.sfn, execution_arn_for(self.stack.saga_arn, order_id))
        return any(
            visit.name == FIRST_STEP
            and visit.retries
            and any(e.startswith(f"{fault.error_type}:") for e in visit.errors)
            for visit in path.visits
        )

    def _outcomes(self) -> dict[str, int]:
        return dict(Counter(self._statuses().values()))

    def _statuses(self) -> dict[str, str]:
        """Each of the campaign's orders' status."""
        return order_statuses(self.stack.settings, self.order_ids)

    def _count(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.injections[kind] += n

    def _violation(self, what: str) -> None:
        with self._lock:
            self.violations.append(what)
