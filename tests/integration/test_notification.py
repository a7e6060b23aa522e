"""The notification queue's consumer: SES through moto, partial batch failures, no double mail."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws
from mypy_boto3_ses import SESClient

from order_saga.db import Database
from order_saga.functions import function
from order_saga.repository import fetch_order
from order_saga.settings import Settings
from order_saga.steps.notification import NotificationKind, render
from tests.support.data import OrderFactory, query
from tests.support.lambda_runtime import invoke

EVENT = (Path(__file__).parents[1] / "events" / "sqs_notification_batch.json").read_text()


@pytest.fixture
def ses(lambda_env: Settings) -> Iterator[SESClient]:
    with mock_aws():
        client = boto3.client("ses", region_name="eu-west-1")
        client.verify_email_identity(EmailAddress=lambda_env.email_sender)
        yield client


def sent(ses: SESClient) -> int:
    return int(ses.get_send_quota()["SentLast24Hours"])


def batch(good: str, failed: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(EVENT.replace("FAILED_ORDER_ID", failed).replace("ORDER_ID", good))
    return event


def test_one_bad_message_fails_alone(ses: SESClient, database: Database, new_order: OrderFactory) -> None:
    # Given a batch of a confirmation, a malformed message and a failure alert
    good, failed = new_order(), new_order()
    with database.transaction() as cursor:
        cursor.execute(
            "UPDATE orders SET status = 'FAILED', failure_reason = 'OutOfStock' WHERE order_id = %s",
            (failed,),
        )
    event = batch(good, failed)
    # When the consumer handles it
    response = invoke(function("SendNotification"), event)
    # Then only the malformed message is reported failed, and two e-mails went out
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert sent(ses) == 2
    rows = query(database, "SELECT order_id, kind FROM notifications ORDER BY kind")
    assert {(r["order_id"], r["kind"]) for r in rows} == {
        (good, "ORDER_CONFIRMATION"),
        (failed, "FAILURE_ALERT"),
    }
    steps = query(database, "SELECT step FROM saga_log ORDER BY id")
    assert [s["step"] for s in steps] == ["SendOrderConfirmation", "SendFailureAlert"]


def test_a_redelivered_message_sends_no_second_mail(
    ses: SESClient, database: Database, new_order: OrderFactory
) -> None:
    event = batch(new_order(), new_order())
    invoke(function("SendNotification"), event)
    invoke(function("SendNotification"), event)
    assert sent(ses) == 2


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "{}",
        '{"order_id": "ORDER", "kind": "SPAM"}',
        '{"order_id": "ORDER", "kind": "FAILURE_ALERT", "extra": 1}',
        '{"order_id": "00000000-0000-4000-8000-000000000000", "kind": "FAILURE_ALERT"}',
    ],
)
def test_malformed_messages_fail_and_send_nothing(ses: SESClient, new_order: OrderFactory, body: str) -> None:
    # Given a batch of a good message and a bad one
    event = batch(new_order(), new_order())
    bad = event["Records"][1] | {"body": body.replace("ORDER", new_order())}
    event["Records"] = [event["Records"][0], bad]
    # When the consumer handles it, then only the bad one fails and only the good one is sent
    response = invoke(function("SendNotification"), event)
    assert response["batchItemFailures"] == [{"itemIdentifier": bad["messageId"]}]
    assert sent(ses) == 1


def test_a_batch_that_fails_whole_is_retried_whole(ses: SESClient, new_order: OrderFactory) -> None:
    event = batch(new_order(), new_order())
    event["Records"] = [event["Records"][1]]
    with pytest.raises(BatchProcessingError):
        invoke(function("SendNotification"), event)
    assert sent(ses) == 0


def test_the_confirmation_lists_the_lines_and_total(database: Database, new_order: OrderFactory) -> None:
    order_id = new_order({"sku-1": 2, "sku-2": 1})
    with database.transaction() as cursor:
        order = fetch_order(cursor, order_id)
    subject, body = render(order, NotificationKind.ORDER_CONFIRMATION)
    assert order_id in subject
    assert "2 x sku-1 at 9.99 EUR" in body
    assert "Total: 24.48 EUR" in body


@pytest.mark.parametrize("status", ["CANCELLING", "CANCELLED", "FAILED"])
def test_a_confirmation_for_an_order_that_moved_on_is_never_mailed(
    ses: SESClient, database: Database, new_order: OrderFactory, status: str
) -> None:
    # Given an order the customer cancelled (or that failed) after its saga queued the confirmation
    order_id = new_order()
    with database.transaction() as cursor:
        cursor.execute("UPDATE orders SET status = %s WHERE order_id = %s", (status, order_id))
    event = batch(order_id, order_id)
    event["Records"] = [event["Records"][0]]  # the ORDER_CONFIRMATION
    # When the consumer takes the confirmation
    response = invoke(function("SendNotification"), event)
    # Then it is handled, nothing is mailed or recorded as sent, and saga_log says why
    assert response == {"batchItemFailures": []}
    assert sent(ses) == 0
    assert query(database, "SELECT * FROM notifications WHERE order_id = %s", order_id) == []
    [entry] = query(database, "SELECT step, status, detail FROM saga_log WHERE saga_id = %s", order_id)
    assert entry == {"step": "SendOrderConfirmation", "status": "STALE", "detail": status}
