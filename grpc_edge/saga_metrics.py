"""Saga metrics for Prometheus, read at scrape time from where the truth is.

The gRPC metrics say how the edge answers; these say how the sagas fare: orders by status (the
NEEDS_ATTENTION count among them), every saga_log step by outcome (completed sagas are ConfirmOrder
CONFIRMED, compensations are RefundPayment, ReleaseStock and MarkOrder* rows), the compensation
DLQ's depth, and the time from an order's creation to its first final status. MySQL and SQS hold
these, so every edge task reports the same global values: dashboards and alerts take `max`, not
`sum`, across tasks. A scrape that cannot read them reports `order_saga_saga_metrics_up 0` and
the gRPC metrics as usual.

What the edge itself does to sagas (the reconciler starting orphaned orders) is counted in
process, per task: those are summed.
"""

import threading
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from order_saga.db import Database
from order_saga.errors import OrderSagaError
from order_saga.models import OrderStatus
from order_saga.observability import logger

LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
FINAL = tuple(status.value for status in OrderStatus if status.is_terminal)

# The first saga_log row of each order that gave it a final status, with the seconds since creation.
_FIRST_FINAL = f"""
    SELECT l.status AS outcome,
           TIMESTAMPDIFF(MICROSECOND, o.created_at, l.`timestamp`) / 1000000 AS seconds
    FROM saga_log l JOIN orders o ON o.order_id = l.saga_id
    WHERE l.id IN (SELECT MIN(id) FROM saga_log WHERE status IN ({", ".join(["%s"] * len(FINAL))})
                   GROUP BY saga_id)
"""  # noqa: S608 - placeholders only
_BUCKETS = ", ".join(f"SUM(seconds <= %s) AS b{index}" for index in range(len(LATENCY_BUCKETS)))
_LATENCY = f"SELECT outcome, COUNT(*) AS n, COALESCE(SUM(seconds), 0) AS total, {_BUCKETS} FROM ({_FIRST_FINAL}) AS t GROUP BY outcome"  # noqa: S608, E501


class RepairCounter:
    """What the edge's background workers did to sagas, by actor and action (in this process)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter(
            "order_saga_repairs",
            "Sagas started, finished or flagged by the reconciler or the watchdog",
            ("actor", "action"),
            registry=registry,
        )

    def record(self, actor: str, action: str, count: int = 1) -> None:
        self.counter.labels(actor, action).inc(count)


class SagaCollector(Collector):
    """Reads the saga metrics from MySQL and SQS on every scrape."""

    def __init__(self, database: Database, sqs: Any | None = None, dlq_url: str | None = None) -> None:
        self.database = database  # one connection, used by one scrape at a time
        self.sqs = sqs
        self.dlq_url = dlq_url
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("order_saga_saga_metrics_up", "1 when the saga metrics could be read")
        try:
            with self._lock:
                metrics = [*self._from_database(), *self._dlq_depth()]
        except (OrderSagaError, BotoCoreError, ClientError) as exc:
            logger.warning("saga metrics not read", extra={"error": str(exc)})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _from_database(self) -> list[Metric]:
        orders = GaugeMetricFamily("order_saga_orders", "Orders by status", labels=["status"])
        steps = CounterMetricFamily(
            "order_saga_saga_steps",
            "Saga steps recorded in saga_log, by step and outcome",
            labels=["step", "status"],
        )
        latency = HistogramMetricFamily(
            "order_saga_create_to_final_seconds",
            "Seconds from an order's creation to its first final status",
            labels=["outcome"],
        )
        with self.database.transaction() as cursor:
            cursor.execute("SELECT status, COUNT(*) AS n FROM orders GROUP BY status")
            counts = {row["status"]: int(row["n"]) for row in cursor.fetchall()}
            cursor.execute("SELECT step, status, COUNT(*) AS n FROM saga_log GROUP BY step, status")
            step_rows = cursor.fetchall()
            cursor.execute(_LATENCY, (*LATENCY_BUCKETS, *FINAL))
            latency_rows = cursor.fetchall()
        for status in OrderStatus:
            orders.add_metric([status.value], counts.get(status.value, 0))
        for row in step_rows:
            steps.add_metric([row["step"], row["status"]], int(row["n"]))
        for row in latency_rows:
            buckets = [(str(le), int(row[f"b{index}"] or 0)) for index, le in enumerate(LATENCY_BUCKETS)]
            latency.add_metric(
                [row["outcome"]], [*buckets, ("+Inf", int(row["n"]))], sum_value=float(row["total"])
            )
        return [orders, steps, latency]

    def _dlq_depth(self) -> list[Metric]:
        if self.sqs is None or not self.dlq_url:
            return []
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depth = GaugeMetricFamily(
            "order_saga_compensation_dlq_messages",
            "Messages waiting on the compensation DLQ (visible or not)",
        )
        depth.add_metric([], sum(int(value) for value in attributes.values()))
        return [depth]
