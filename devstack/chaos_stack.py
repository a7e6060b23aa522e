"""How the chaos tools (the campaign, the crash matrix) reach the running stack: as a client
through the edge, as an operator through Step Functions, as an outage through its servers; and
how they wait until nothing of theirs is in flight."""

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from botocore.exceptions import ClientError

from order_ops.audit import AuditReport, read_books
from order_saga.cache import create_redis
from order_saga.catalog import set_product
from order_saga.db import Database
from order_saga.settings import Settings
from order_saga.workflow import execution_arn_for

from . import faults
from .chaos_plan import FIRST_STEP, unit_price
from .gateway.process import PaymentGatewayServer
from .services import LocalServer, Redis

RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
CLIENT_PATIENCE_SECONDS = 90.0  # how long a client keeps retrying a call through an outage
# A failover's length (RDS documents 60-120 s for Multi-AZ; the saga's budget is 210 s of waits),
# scaled like the stack's Retry waits so that the outage keeps its place in the budget.
FAILOVER_SECONDS = 60.0


@dataclass
class ChaosStack:
    """How the chaos tools reach the stack, and the servers they may disturb."""

    address: str
    settings: Settings  # the database and Redis the functions and the edge use
    sfn: Any
    sqs: Any
    saga_arn: str
    notification_queue_url: str
    edge: LocalServer
    mariadb: LocalServer
    redis_server: Redis
    retry_time_scale: float  # the stack's scale of its Retry waits (1: real time)
    gateway: PaymentGatewayServer
    secrets: Any  # the Secrets Manager client of the gateway's key
    mint_token: Callable[[str], str]
    audit: Callable[..., AuditReport]  # (deadline_seconds=, stock_baseline=, since=) -> report
    faults_file: Path = field(default_factory=lambda: faults.FAULTS_FILE)


# -- as a client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeAnswer:
    """What one RPC came to: its reply; or the code the edge refused it with for a business
    reason; or a violation (INTERNAL or UNKNOWN, or still unavailable past the client's patience)."""

    reply: Any = None
    refused: grpc.StatusCode | None = None
    violation: str | None = None


def call_edge(stack: ChaosStack, method: Any, request: Any, user: str, what: str) -> EdgeAnswer:
    """One RPC as `user`, retried through outages (UNAVAILABLE, rate limits) for a while, as a
    shop's backend does."""
    deadline = time.monotonic() + CLIENT_PATIENCE_SECONDS
    while True:
        try:
            return EdgeAnswer(
                reply=method(
                    request,
                    metadata=(("authorization", f"Bearer {stack.mint_token(user)}"),),
                    timeout=15,
                )
            )
        except grpc.RpcError as error:
            code = error.code()
            if code in NEVER:
                return EdgeAnswer(violation=f"{what}: {code.name}: {error.details()}")
            if code not in RETRYABLE:
                return EdgeAnswer(refused=code)
            if time.monotonic() > deadline:
                return EdgeAnswer(violation=f"{what}: still {code.name} after {CLIENT_PATIENCE_SECONDS:.0f}s")
            time.sleep(0.5)


@contextmanager
def first_steps_held(faults_file: Path) -> Iterator[None]:
    """Every saga's first step held while the block runs: an order created in the block can have
    faults aimed at it, or its saga stopped, before its saga gets past that step. Released, each
    held call meets the fault plan as it is then."""
    hold = faults.make_fault(function=FIRST_STEP, kind=faults.FaultKind.HOLD)
    faults.add_fault(hold, faults_file, first=True)
    try:
        yield
    finally:
        faults.remove_fault(hold, faults_file)


# -- as an operator ---------------------------------------------------------------------------


def stop_execution(stack: ChaosStack, order_id: str) -> str:
    """What an operator does from the console: stop the order's saga where it is. Returns its
    status just before (StopExecution answers for a finished execution too, so only that status
    says whether a running saga was stopped)."""
    arn = execution_arn_for(stack.saga_arn, order_id)
    try:
        status = str(stack.sfn.describe_execution(executionArn=arn)["status"])
        stack.sfn.stop_execution(executionArn=arn, error="Operator", cause="chaos")
    except ClientError as exc:  # not started: the reconciler starts it later
        return f"not stopped: {exc}"
    return status


def stock_the_catalog(settings: Settings, units: Mapping[str, int]) -> tuple[dict[str, int], datetime]:
    """Each product at its units available (plus whatever is still reserved); the stock baseline
    of those products, and the database's clock once they are stocked."""
    database, cache = Database(settings), create_redis(settings)
    try:
        with database.transaction() as cursor:
            cursor.execute("SELECT product_id, reserved FROM inventory")
            reserved = {row["product_id"]: int(row["reserved"]) for row in cursor.fetchall()}
        for product, available in units.items():
            set_product(
                database,
                cache,
                product_id=product,
                stock=available + reserved.get(product, 0),
                unit_price=unit_price(product),
                currency="EUR",
                name=f"chaos {product}",
            )
        baseline = read_books(database).stock_baseline()
        with database.transaction() as cursor:
            cursor.execute("SELECT CURRENT_TIMESTAMP(3) AS now")
            now = cursor.fetchone()["now"]  # type: ignore[index]
    finally:
        database.close()
    return {product: baseline[product] for product in units}, now


# -- as an outage -----------------------------------------------------------------------------


def ride_out_failover(
    server: LocalServer, retry_time_scale: float, while_down: Callable[[], None] = lambda: None
) -> None:
    """The server down for a failover's length at the stack's Retry scale, then up again;
    `while_down` runs as soon as it is down."""
    server.stop()
    try:
        while_down()
        time.sleep(FAILOVER_SECONDS * retry_time_scale)
    finally:
        server.start()


# -- the end ----------------------------------------------------------------------------------


def settle(stack: ChaosStack, order_ids: Collection[str], timeout: float, echo: Callable[[str], Any]) -> bool:
    """Wait until no execution of these orders runs, every one is settled (one whose saga was
    stopped waits for the watchdog, an orphan for the reconciler) and no notice waits on the
    queue (a failed one is received again after its visibility timeout). Whether it came."""
    deadline = time.monotonic() + timeout
    ours = set(order_ids)
    database = Database(stack.settings)
    try:
        while True:
            running = [
                e["name"]
                for arn in {stack.saga_arn, *_other_machines(stack)}
                for e in stack.sfn.list_executions(
                    stateMachineArn=arn, statusFilter="RUNNING", maxResults=1000
                )["executions"]
                if e["name"] in ours
            ]
            with database.transaction() as cursor:
                cursor.execute(
                    "SELECT COUNT(*) AS n FROM orders WHERE status IN ('PENDING', 'CANCELLING')"
                    " AND order_id IN %s",
                    (list(ours) or [""],),
                )
                unsettled = int(cursor.fetchone()["n"])  # type: ignore[index]
            waiting = _queued_notices(stack)
            if not running and not unsettled and not waiting:
                return True
            if time.monotonic() > deadline:
                echo(
                    f"  not settled: {len(running)} running, {unsettled} orders unsettled,"
                    f" {waiting} notices queued"
                )
                return False
            time.sleep(2.0)
    finally:
        database.close()


def _other_machines(stack: ChaosStack) -> list[str]:
    names = {m["stateMachineArn"] for m in stack.sfn.list_state_machines()["stateMachines"]}
    return sorted(names - {stack.saga_arn})


def _queued_notices(stack: ChaosStack) -> int:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.notification_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def order_statuses(settings: Settings, order_ids: Collection[str]) -> dict[str, str]:
    """Each order's status."""
    database = Database(settings)
    try:
        with database.transaction() as cursor:
            cursor.execute(
                "SELECT order_id, status FROM orders WHERE order_id IN %s", (list(order_ids) or [""],)
            )
            return {row["order_id"]: row["status"] for row in cursor.fetchall()}
    finally:
        database.close()
