"""Driving the local stack from a test: orders, executions, the database, SQS and SES."""

import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import boto3
import redis

from devstack import dlq, executions, faults
from devstack.asl import STATE_MACHINES
from devstack.aws import AwsStackSettings
from devstack.executions import ExecutionPath
from devstack.wiring import COMPENSATION_DLQ, NOTIFICATION_QUEUE
from order_saga.db import Database
from order_saga.settings import Settings
from tests.integration.conftest import CATALOG, OrderFactory, query

TERMINAL = {"CONFIRMED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


@dataclass
class LocalStack:
    aws: AwsStackSettings
    settings: Settings  # what the functions were wired to (the run's own database)

    def __post_init__(self) -> None:
        self.database = Database(self.settings)
        self.new_order = OrderFactory(self.database)
        self.sfn = self.client("stepfunctions")
        self.sqs = self.client("sqs")
        self.lam = self.client("lambda")
        machines = executions.machine_arns(self.sfn)
        self.saga_arn = machines[STATE_MACHINES[0].name]
        self.cancellation_arn = machines[STATE_MACHINES[1].name]
        self.dlq_url = self.sqs.get_queue_url(QueueName=COMPENSATION_DLQ)["QueueUrl"]
        self.notification_queue_url = self.sqs.get_queue_url(QueueName=NOTIFICATION_QUEUE)["QueueUrl"]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.aws.endpoint_url,
            region_name=self.aws.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

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
        # Named after the order on either machine, as the edge does.
        machine = self.cancellation_arn if cancellation else self.saga_arn
        started = self.sfn.start_execution(
            stateMachineArn=machine, name=order_id, input=json.dumps({"order_id": order_id})
        )
        return str(started["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 120) -> ExecutionPath:
        deadline = time.monotonic() + timeout
        while self.sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"{execution_arn} still running after {timeout}s"
            time.sleep(0.2)
        return executions.path_of(self.sfn, execution_arn)

    def run(self, order_id: str, *, cancellation: bool = False) -> ExecutionPath:
        return self.wait(self.start(order_id, cancellation=cancellation))

    def fault(self, function: str, kind: str, order_id: str, **fields: Any) -> None:
        faults.add_fault(faults.make_fault(function=function, kind=kind, order_id=order_id, **fields))

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

    def dlq_messages(self) -> list[dict[str, Any]]:
        return [message.body for message in dlq.peek(self.sqs, self.dlq_url)]
