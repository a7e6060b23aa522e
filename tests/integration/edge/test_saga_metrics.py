"""The saga metrics the edge exports: read from MySQL (and SQS) at each scrape, and the
reconciler's actions counted as they happen."""

import boto3
import redis
from moto import mock_aws
from prometheus_client import CollectorRegistry

from grpc_edge.reconciler import Reconciler
from grpc_edge.saga_metrics import RepairCounter, SagaCollector
from grpc_edge.server import build_order_service
from order_saga.db import Database
from order_saga.repository import log_step
from order_saga.settings import Settings
from tests.support.data import OrderFactory
from tests.support.edge import Edge, insert_orphan
from tests.support.processes import free_port


def scrape(collector: SagaCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_orders_steps_and_latency_come_from_the_database(database: Database) -> None:
    # Given a confirmed order, a failed one after a refund, and a pending one
    new_order = OrderFactory(database)
    confirmed, failed, _pending = new_order(), new_order(), new_order()
    with database.transaction() as cursor:
        cursor.execute("UPDATE orders SET status = 'CONFIRMED' WHERE order_id = %s", (confirmed,))
        cursor.execute("UPDATE orders SET status = 'FAILED' WHERE order_id = %s", (failed,))
        log_step(cursor, confirmed, "ConfirmOrder", "CONFIRMED")
        log_step(cursor, failed, "RefundPayment", "REFUNDED")
        log_step(cursor, failed, "MarkOrderFailed", "FAILED")
    # When Prometheus scrapes
    metrics = scrape(SagaCollector(database))
    # Then
    assert metrics.get_sample_value("order_saga_saga_metrics_up") == 1
    for status, count in {"PENDING": 1, "CONFIRMED": 1, "FAILED": 1, "NEEDS_ATTENTION": 0}.items():
        assert metrics.get_sample_value("order_saga_orders", {"status": status}) == count
    assert (
        metrics.get_sample_value(
            "order_saga_saga_steps_total", {"step": "RefundPayment", "status": "REFUNDED"}
        )
        == 1
    )
    for outcome in ("CONFIRMED", "FAILED"):
        assert metrics.get_sample_value("order_saga_create_to_final_seconds_count", {"outcome": outcome}) == 1
        assert (
            metrics.get_sample_value(
                "order_saga_create_to_final_seconds_bucket", {"outcome": outcome, "le": "+Inf"}
            )
            == 1
        )
    # a status change later (a cancellation) does not move an order to another outcome
    with database.transaction() as cursor:
        log_step(cursor, confirmed, "MarkOrderCancelled", "CANCELLED")
    later = scrape(SagaCollector(database))
    assert (
        later.get_sample_value("order_saga_create_to_final_seconds_count", {"outcome": "CANCELLED"}) is None
    )


def test_the_dlq_depth_counts_visible_and_hidden_messages(database: Database) -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="compensation-dlq")["QueueUrl"]
        for body in ("a", "b"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)  # one in flight
        metrics = scrape(SagaCollector(database, sqs, url))
        assert metrics.get_sample_value("order_saga_compensation_dlq_messages") == 2


def test_an_unreachable_database_is_reported_not_raised(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"mysql_port": free_port(), "mysql_connect_timeout": 1})
    metrics = scrape(SagaCollector(Database(nowhere)))
    assert metrics.get_sample_value("order_saga_saga_metrics_up") == 0
    assert metrics.get_sample_value("order_saga_orders", {"status": "PENDING"}) is None


def test_the_reconciler_counts_the_sagas_it_starts(edge: Edge, redis_client: "redis.Redis") -> None:
    insert_orphan(edge.database, age_seconds=120)
    registry = CollectorRegistry()
    reconciler = Reconciler(
        build_order_service(edge.settings, redis_client),
        None,
        interval_seconds=0,
        grace_seconds=60,
        watchdog_grace_seconds=0,
        repairs=RepairCounter(registry),
    )
    reconciler.run_once()
    reconciler.run_once()  # nothing left to start
    labels = {"actor": "reconciler", "action": "started_saga"}
    assert registry.get_sample_value("order_saga_repairs_total", labels) == 1
