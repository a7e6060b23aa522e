"""Driving a local stack of the tests' own from a test: the edge as a client, executions, the
database, SQS and SES.

The stack lives in a state folder of its own (DEVSTACK_DIR under a temporary directory) on free
ports, started and stopped with `order-saga up|down` as a newcomer does. A stack this checkout
runs (`make demo`, `make run`) is never touched.
"""

import json
import os
import subprocess
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import grpc
import redis
from dotenv import dotenv_values

from devstack import faults
from devstack.asl import load
from devstack.aws_settings import AwsStackSettings
from devstack.gateway.process import PaymentGatewayServer
from devstack.issuer.process import TokenIssuerServer
from devstack.issuer.tokens import SERVICE_SCOPES
from devstack.wiring import GATEWAY_SECRET, queue_name
from grpc_edge.auth import CUSTOMER_METADATA
from grpc_edge.channel import open_channel
from grpc_edge.generated.orders.v1 import orders_pb2 as pb
from grpc_edge.generated.orders.v1 import orders_pb2_grpc
from order_ops import dlq, executions
from order_ops.executions import ExecutionPath
from order_saga.db import Database
from order_saga.manifest import (
    COMPENSATION_DLQ,
    NOTIFICATION_QUEUE,
    ORDER_CANCELLATION,
    ORDER_SAGA,
    STATE_MACHINES,
)
from order_saga.payment_gateway import HttpGateway
from order_saga.settings import Settings
from order_saga.workflow import execution_arn_for
from tests.support.data import CATALOG, OrderFactory, query
from tests.support.gateway import books
from tests.support.processes import cli, free_port
from tests.support.waiting import Deadline

TERMINAL = {"CONFIRMED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}
# Compensations "retry long" (minutes in AWS); the run waits 1/20 of each Retry interval.
RETRY_TIME_SCALE = 0.05
# Generous bounds for a loaded machine: they end a hung wait with a message, they decide nothing.
WAIT_SECONDS = 300.0


def stack_environment(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a stack with a state folder and ports of its own (nothing inherited
    from a stack this checkout may run: its settings would point there)."""
    inherited = (
        "MYSQL_",
        "REDIS_",
        "AWS_",
        "JWT_",
        "ORDERS_",
        "CONSOLE_",
        "PROMETHEUS_",
        "PAYMENT_GATEWAY_",
        "DEVSTACK_",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(inherited)}
    return (
        env
        | {
            "DEVSTACK_DIR": str(folder),
            "DEVSTACK_MYSQL_PORT": str(free_port()),
            "DEVSTACK_REDIS_PORT": str(free_port()),
            "DEVSTACK_MOTO_PORT": str(free_port()),
            "DEVSTACK_GRPC_PORT": str(free_port()),
            "DEVSTACK_METRICS_PORT": str(free_port()),
            "DEVSTACK_CONSOLE_PORT": str(free_port()),
            "DEVSTACK_PROMETHEUS_PORT": str(free_port()),
            "DEVSTACK_GATEWAY_PORT": str(free_port()),
            "DEVSTACK_ISSUER_PORT": str(free_port()),
        }
        | extra
    )


def wait_until(condition: Callable[[], Any], what: str, seconds: float = WAIT_SECONDS) -> Any:
    """Poll until `condition()` holds and return what it gave; fail naming `what` did not happen."""
    return Deadline(seconds).wait_for(condition, what)


# The saga's expected paths (docs/state-transitions.md). The compensations run in a Parallel
# state: its two branches' states are listed in name order.
INITIAL = {product: (stock, 0) for product, (_, stock) in CATALOG.items()}
HAPPY_PATH = ["ProcessPayment", "ReserveStock", "ConfirmOrder", "SendOrderConfirmation", "OrderConfirmed"]
COMPENSATE = ["Compensate", "RefundPayment", "ReleaseStock", "CompensationOutcome"]
COMPENSATED_PATH = [*COMPENSATE, "MarkOrderFailed", "SendFailureAlert", "OrderFailed"]
CANCELLED_PATH = [*COMPENSATE, "MarkOrderCancelled", "SendCancellationNotice", "OrderCancelled"]


def states(path: ExecutionPath) -> list[str]:
    """The path's states, those of the Parallel branches (which interleave) in name order."""
    names = path.states()
    if "Compensate" not in names or "CompensationOutcome" not in names:
        return names
    start, end = names.index("Compensate") + 1, names.index("CompensationOutcome")
    return [*names[:start], *sorted(names[start:end]), *names[end:]]


def _retriers(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield from node.get("Retry", [])
        for value in node.values():
            yield from _retriers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _retriers(value)


# The errors some Retry of the state machines absorbs: transient ones (a deadlock, a throttled
# invocation, a step slowed past its timeout on a loaded machine).
TRANSIENT_ERRORS = {
    name for spec in STATE_MACHINES for retrier in _retriers(load(spec)) for name in retrier["ErrorEquals"]
}


def transient_retries(path: ExecutionPath, *caused: str) -> int:
    """The path's retries that the test did not cause, asserting each was of a transient error.

    `caused` names the error of each retry the test made happen (once per retry); each must be in
    the path. Any other retry is a transient error the Retry absorbed: it adds one transition
    without changing the path, so a transition count is the path's figure plus these."""
    retried = Counter(error.split(":")[0] for visit in path.visits for error in visit.errors[: visit.retries])
    missing, unplanned = Counter(caused) - retried, retried - Counter(caused)
    assert not missing, f"retries the test caused are not in the path: {dict(missing)}"
    assert set(unplanned) <= TRANSIENT_ERRORS, f"a retry of a non-transient error: {dict(unplanned)}"
    return sum(unplanned.values())


@contextmanager
def held(faults_file: Path, function: str) -> Iterator[None]:
    """A `hold` fault on every call of `function` in a stack's fault plan while the block runs;
    the function's faults are cleared when it ends, and a held call goes on."""
    faults.add_fault(faults.make_fault(function=function, kind="hold"), path=faults_file)
    try:
        yield
    finally:
        faults.clear_faults(function, path=faults_file)


def status_name(status: int) -> str:
    return pb.OrderStatus.Name(status).removeprefix("ORDER_STATUS_")  # type: ignore[arg-type]


@dataclass
class Customer:
    """A client of the running edge: a real channel and a token per call; the customer's own app,
    or a service acting for the customer it names (`acting_for`)."""

    stub: orders_pb2_grpc.OrderServiceStub
    token: Callable[[], str]
    acting_for: str | None = None

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        bearer = ("authorization", f"Bearer {self.token()}")
        return (bearer,) if self.acting_for is None else (bearer, (CUSTOMER_METADATA, self.acting_for))

    def create(
        self,
        items: dict[str, int] | None = None,
        *,
        token: str = "tok_visa",
        email: str = "buyer@example.com",
        key: str | None = None,
    ) -> pb.Order:
        request = pb.CreateOrderRequest(
            idempotency_key=key or str(uuid.uuid4()),
            items=[pb.OrderItem(product_id=p, quantity=q) for p, q in (items or {"sku-1": 2}).items()],
            payment_token=token,
            email=email,
        )
        return self.stub.CreateOrder(request, metadata=self.metadata, timeout=30).order

    def cancel(self, order_id: str, reason: str = "changed my mind") -> pb.Order:
        request = pb.CancelOrderRequest(order_id=order_id, reason=reason)
        return self.stub.CancelOrder(request, metadata=self.metadata, timeout=30)

    def get(self, order_id: str) -> pb.Order:
        return self.stub.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=self.metadata, timeout=30)

    def orders(self) -> list[pb.Order]:
        """The first page of the orders this caller sees."""
        return list(
            self.stub.ListOrders(
                pb.ListOrdersRequest(page_size=100), metadata=self.metadata, timeout=30
            ).orders
        )

    def watch(self, order_id: str, seconds: float = WAIT_SECONDS) -> list[str]:
        """The statuses WatchOrder streams until the order is final (the stream then ends)."""
        stream = self.stub.WatchOrder(
            pb.WatchOrderRequest(order_id=order_id), metadata=self.metadata, timeout=seconds
        )
        try:
            return [status_name(order.status) for order in stream]
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise AssertionError(f"order {order_id} not final after {seconds:.0f}s") from exc
            raise


@dataclass
class LocalStack:
    aws: AwsStackSettings
    settings: Settings  # what the functions and the edge were wired to
    env: dict[str, str] = field(default_factory=dict)  # the stack's environment (for `order-saga`)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.env["DEVSTACK_DIR"])
        self.faults_file = self.state_dir / "faults.json"
        self.grpc_address = self.stack_env()["ORDERS_GRPC_ADDRESS"]
        self.database = Database(self.settings)
        self.new_order = OrderFactory(self.database)
        self.sfn = self.client("stepfunctions")
        self.sqs = self.client("sqs")
        self.lam = self.client("lambda")
        # The aliases `live`, which the edge and the watchdog start executions through
        written = self.stack_env()
        self.saga_arn = written[ORDER_SAGA.setting]
        self.cancellation_arn = written[ORDER_CANCELLATION.setting]
        self.dlq_url = self.sqs.get_queue_url(QueueName=queue_name(COMPENSATION_DLQ))["QueueUrl"]
        self.notification_queue_url = self.sqs.get_queue_url(QueueName=queue_name(NOTIFICATION_QUEUE))[
            "QueueUrl"
        ]
        self.channel = open_channel(self.grpc_address)
        self.gateway_server = PaymentGatewayServer(int(self.env["DEVSTACK_GATEWAY_PORT"]), self.state_dir)
        self.issuer = TokenIssuerServer(int(self.env["DEVSTACK_ISSUER_PORT"]), self.state_dir).issuer

    @classmethod
    def running(cls, env: dict[str, str]) -> "LocalStack":
        """The stack `order-saga up` started with this environment."""
        written = {k: v for k, v in dotenv_values(Path(env["DEVSTACK_DIR"]) / "env").items() if v}
        fields = {name: written[name.upper()] for name in Settings.model_fields if name.upper() in written}
        return cls(
            AwsStackSettings(moto_port=int(env["DEVSTACK_MOTO_PORT"]), retry_time_scale=RETRY_TIME_SCALE),
            Settings.model_validate(fields),
            env,
        )

    def stack_env(self) -> dict[str, str]:
        """What the stack wrote to its own env file (endpoints, ARNs, queue URLs, the edge)."""
        return {k: v for k, v in dotenv_values(self.state_dir / "env").items() if v is not None}

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.aws.endpoint_url,
            region_name=self.aws.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def customer(self, user: str = "user-1") -> Customer:
        """The customer's own app, with the customer's access token."""
        stub = orders_pb2_grpc.OrderServiceStub(self.channel)
        return Customer(stub, lambda: self.issuer.customer_token(user))

    def service(
        self, client: str, acting_for: str | None, scopes: tuple[str, ...] = SERVICE_SCOPES
    ) -> Customer:
        """A service (client credentials) acting for the customer it names."""
        stub = orders_pb2_grpc.OrderServiceStub(self.channel)
        return Customer(stub, lambda: self.issuer.service_token(client, scopes), acting_for)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`order-saga ARGS` against this stack, in a process of its own."""
        return cli(*args, env=self.env, timeout=WAIT_SECONDS)

    def operator(self, *args: str) -> tuple[int, str]:
        """An operator's `order-saga ARGS`: its exit code and everything it printed."""
        result = self.cli(*args)
        return result.returncode, result.stdout + result.stderr

    def stock_catalog(self) -> None:
        with self.database.transaction() as cursor:
            cursor.executemany(
                "INSERT INTO inventory (product_id, name, stock, unit_price, currency)"
                " VALUES (%s, %s, %s, %s, 'EUR')",
                [(product, product.upper(), stock, price) for product, (price, stock) in CATALOG.items()],
            )
        redis.Redis.from_url(self.settings.redis_url).flushdb()

    # -- executions -------------------------------------------------------------------------

    def start(self, order_id: str, *, cancellation: bool = False) -> str:
        """StartExecution by hand (name = order_id), for the tests whose subject is not the edge."""
        machine = self.cancellation_arn if cancellation else self.saga_arn
        started = self.sfn.start_execution(
            stateMachineArn=machine, name=order_id, input=json.dumps({"order_id": order_id})
        )
        return str(started["executionArn"])

    def live_version(self, alias_arn: str) -> str:
        """The state machine version the alias routes every execution to."""
        alias = self.sfn.describe_state_machine_alias(stateMachineAliasArn=alias_arn)
        [route] = alias["routingConfiguration"]
        return str(route["stateMachineVersionArn"])

    def route(self, alias_arn: str, version_arn: str) -> None:
        """Point the alias at this version (what a rollback does, docs/deploy.md)."""
        routing = [{"stateMachineVersionArn": version_arn, "weight": 100}]
        self.sfn.update_state_machine_alias(stateMachineAliasArn=alias_arn, routingConfiguration=routing)

    def execution_of(self, order_id: str, *, cancellation: bool = False) -> str:
        return execution_arn_for(self.cancellation_arn if cancellation else self.saga_arn, order_id)

    def wait(self, execution_arn: str, timeout: float = WAIT_SECONDS) -> ExecutionPath:
        def ended() -> bool:
            try:
                return bool(self.sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING")
            except self.sfn.exceptions.ExecutionDoesNotExist:
                return False  # the edge has not started it yet

        wait_until(ended, f"the end of {execution_arn}", timeout)
        return executions.path_of(self.sfn, execution_arn)

    def run(self, order_id: str, *, cancellation: bool = False) -> ExecutionPath:
        return self.wait(self.start(order_id, cancellation=cancellation))

    def finish(self, order_id: str, *, cancellation: bool = False) -> ExecutionPath:
        """Wait for the execution the edge started for the order, and return its path."""
        return self.wait(self.execution_of(order_id, cancellation=cancellation))

    def fault(self, function: str, kind: str, order_id: str | None = None, **fields: Any) -> None:
        """A fault of the plan the stack's invoker reads (order_id None: every call of the function)."""
        fault = faults.make_fault(function=function, kind=kind, order_id=order_id, **fields)
        faults.add_fault(fault, path=self.faults_file)

    def clear_faults(self, function: str | None = None) -> None:
        """Remove the faults (of one function): a held call goes on."""
        faults.clear_faults(function, path=self.faults_file)

    def held(self, function: str) -> AbstractContextManager[None]:
        """Every call of `function` held while the block runs: an order created through the edge
        in the block can have faults aimed at it before its saga goes on, or be acted on while its
        saga waits in that step."""
        return held(self.faults_file, function)

    @contextmanager
    def real_retry_waits(self) -> Iterator[None]:
        """The state machines' Retry waits at real time (scale 1) while the block runs, on this
        stack started scaled (devstack/moto_server.py): an outage meets production's budget."""
        override = self.state_dir / "retry-time-scale"
        override.write_text("1")
        try:
            yield
        finally:
            override.unlink()

    def wait_for_state(self, order_id: str, state: str) -> None:
        """Until the order's saga has entered `state` (where a held step waits)."""

        def entered() -> bool:
            try:
                return state in executions.path_of(self.sfn, self.execution_of(order_id)).states()
            except self.sfn.exceptions.ExecutionDoesNotExist:
                return False

        wait_until(entered, f"the saga of {order_id} to enter {state}")

    def forget_step_results(self, handler: str) -> None:
        """Drop the results a step's handler left in Redis for the idempotency fast path, as an
        eviction or a cache failover would: the step's next call is decided by MySQL alone."""
        cache = redis.Redis.from_url(self.settings.redis_url)
        for key in cache.scan_iter(f"order-saga:{handler}#*"):
            cache.delete(key)

    # -- the payment gateway ------------------------------------------------------------------

    @property
    def gateway(self) -> HttpGateway:
        """The stack's gateway server through the functions' adapter, with the key its secret
        holds now (as the functions read it; by the secret's name, which a restart keeps)."""
        secrets = self.client("secretsmanager")

        def key(_fresh: bool) -> str:
            return str(secrets.get_secret_value(SecretId=GATEWAY_SECRET)["SecretString"])

        return HttpGateway(self.settings.payment_gateway_url, key, timeout=30)

    def books(self, order_id: str) -> tuple[int, int]:
        """(charges, refunds) the stack's gateway holds for the order (tests/support/gateway.py)."""
        return books(self.gateway, order_id)

    # -- the database ---------------------------------------------------------------------

    def query(self, sql: str, *args: object) -> list[dict[str, Any]]:
        return query(self.database, sql, *args)

    def order(self, order_id: str) -> dict[str, Any]:
        [row] = self.query(
            "SELECT status, failure_reason, cancel_requested FROM orders WHERE order_id = %s", order_id
        )
        return row

    def payment(self, order_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT status, amount FROM payments WHERE order_id = %s", order_id)
        return rows[0] if rows else None

    def stock(self) -> dict[str, tuple[int, int]]:
        """(stock, reserved) of every product."""
        rows = self.query("SELECT product_id, stock, reserved FROM inventory")
        return {row["product_id"]: (row["stock"], row["reserved"]) for row in rows}

    def saga_steps(self, order_id: str) -> list[str]:
        rows = self.query("SELECT step FROM saga_log WHERE saga_id = %s ORDER BY id", order_id)
        return [row["step"] for row in rows]

    # -- messages -------------------------------------------------------------------------

    def emails_about(self, order_id: str) -> list[dict[str, Any]]:
        """The e-mails moto's SES accepted whose subject names the order."""
        with urllib.request.urlopen(f"{self.aws.endpoint_url}/moto-api/data.json", timeout=10) as reply:
            sent = json.load(reply)["ses"]["Message"]
        return [mail for mail in sent if order_id in mail["subject"]]

    def wait_for_emails(self, order_id: str, count: int = 1) -> list[dict[str, Any]]:
        """The mails about the order once `count` went out (the queue's consumer sends them)."""
        wait_until(lambda: len(self.emails_about(order_id)) >= count, f"{count} e-mail(s) about {order_id}")
        return self.emails_about(order_id)

    def dlq_messages(self) -> list[dict[str, Any]]:
        return [message.body for message in dlq.peek(self.sqs, self.dlq_url)]

    def purge_dlq(self) -> None:
        """Empty the compensation DLQ, message by message (PurgeQueue allows one call a minute)."""
        for message in dlq.peek(self.sqs, self.dlq_url):
            self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=message.receipt_handle)
