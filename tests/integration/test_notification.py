"""The notification queue's consumer: SES through moto, partial batch failures, no double mail."""

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError
from moto import mock_aws
from mypy_boto3_ses import SESClient

from order_saga.db import Database
from order_saga.errors import NoticeInFlight
from order_saga.functions import function
from order_saga.repository import fetch_order
from order_saga.settings import Settings
from order_saga.steps.notification import (
    CLAIM_STALE_AFTER_SECONDS,
    NotificationKind,
    NotificationMessage,
    NotificationOutcome,
    render,
    send_notification,
)
from tests.support.data import OrderFactory, claim_notice, query
from tests.support.lambda_runtime import invoke
from tests.support.waiting import Deadline

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
    # Given a batch whose notices were sent
    event = batch(new_order(), new_order())
    invoke(function("SendNotification"), event)
    # When SQS delivers it again, then the notices are handled and nothing more is mailed or logged
    again = invoke(function("SendNotification"), event)
    assert again["batchItemFailures"] == [{"itemIdentifier": event["Records"][1]["messageId"]}]
    assert sent(ses) == 2
    assert query(database, "SELECT DISTINCT status FROM notifications") == [{"status": "SENT"}]
    assert len(query(database, "SELECT id FROM saga_log WHERE status = 'SENT'")) == 2


class HeldSes:
    """SES that holds each mail until the test releases it, after saying the mail got there: a
    consumer that claimed its notice and waits for SES's answer."""

    def __init__(self, ses: SESClient, deadline: Deadline) -> None:
        self.ses = ses
        self.deadline = deadline
        self.sending = threading.Event()
        self.released = threading.Event()

    def send_email(self, **request: Any) -> Any:
        self.sending.set()
        self.released.wait(self.deadline.left("the test to release the held mail"))
        return self.ses.send_email(**request)


def test_a_notice_another_consumer_is_mailing_fails_its_message_until_it_is_sent(
    ses: SESClient, database: Database, lambda_env: Settings, new_order: OrderFactory
) -> None:
    # Given a consumer that claimed an order's confirmation and waits for SES's answer
    event = batch(new_order(), new_order())
    contested, other = event["Records"][0], event["Records"][2]
    event["Records"] = [contested, other]
    deadline, held = Deadline(60), HeldSes(ses, Deadline(60))
    message = NotificationMessage.model_validate_json(contested["body"])
    with ThreadPoolExecutor(max_workers=1) as pool, closing(Database(lambda_env)) as own_database:
        first = pool.submit(send_notification, own_database, held, lambda_env.email_sender, message, "first")
        assert held.sending.wait(deadline.left("the first consumer to call SES"))
        # When a second consumer gets the same message (a duplicated delivery) in its batch
        response = invoke(function("SendNotification"), event)
        # Then it mails only the other notice, and reports the contested message failed
        assert response == {"batchItemFailures": [{"itemIdentifier": contested["messageId"]}]}
        assert sent(ses) == 1
        held.released.set()
        outcome = first.result(timeout=deadline.left("the first consumer to record its mail"))
    # And the first consumer's mail is the one recorded
    assert outcome.sent
    assert sent(ses) == 2
    assert query(
        database, "SELECT status, message_id, claimant FROM notifications WHERE kind = %s", message.kind
    ) == [{"status": "SENT", "message_id": outcome.message_id, "claimant": "first"}]
    # When SQS redelivers the failed message, then it is skipped: one mail, one SENT entry
    event["Records"] = [contested]
    assert invoke(function("SendNotification"), event) == {"batchItemFailures": []}
    assert sent(ses) == 2
    log = query(database, "SELECT status FROM saga_log WHERE saga_id = %s", message.order_id)
    assert log == [{"status": "SENT"}]


def test_two_consumers_racing_for_one_notice_mail_it_once(
    ses: SESClient, database: Database, lambda_env: Settings, new_order: OrderFactory
) -> None:
    # Given two consumers that got the same confirmation (a duplicated delivery) at the same moment
    message = NotificationMessage(order_id=new_order(), kind=NotificationKind.ORDER_CONFIRMATION)
    start = threading.Barrier(2, timeout=60)

    def consume(claimant: str) -> NotificationOutcome | NoticeInFlight:
        with closing(Database(lambda_env)) as own_database:
            own_database.connection()  # connected before the race starts
            start.wait()
            try:
                return send_notification(own_database, ses, lambda_env.email_sender, message, claimant)
            except NoticeInFlight as exc:
                return exc

    # When both handle it
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(consume, ["one", "two"]))
    # Then one mailed it; the other found it claimed (its message is redelivered) or already sent
    mailed = [r for r in results if isinstance(r, NotificationOutcome) and r.sent]
    assert len(mailed) == 1, results
    assert sent(ses) == 1
    assert query(database, "SELECT status, message_id FROM notifications") == [
        {"status": "SENT", "message_id": mailed[0].message_id}
    ]
    assert query(database, "SELECT status FROM saga_log") == [{"status": "SENT"}]


def test_a_stale_claim_is_taken_over_and_the_takeover_recorded(
    ses: SESClient, database: Database, new_order: OrderFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a confirmation claimed by a consumer that died before it recorded the mail
    order_id = new_order()
    kind = NotificationKind.ORDER_CONFIRMATION
    claim_notice(database, order_id, kind, age_seconds=CLAIM_STALE_AFTER_SECONDS + 1, claimant="dead")
    event = batch(order_id, order_id)
    event["Records"] = [event["Records"][0]]
    # When its message comes back
    response = invoke(function("SendNotification"), event)
    # Then the notice is mailed once, recorded SENT by its new claimant, and the takeover is logged
    assert response == {"batchItemFailures": []}
    assert sent(ses) == 1
    [row] = query(database, "SELECT status, claimant FROM notifications")
    assert row["status"] == "SENT"
    assert row["claimant"] != "dead"
    log = query(
        database, "SELECT step, status, detail FROM saga_log WHERE saga_id = %s ORDER BY id", order_id
    )
    assert [(entry["step"], entry["status"]) for entry in log] == [
        ("SendOrderConfirmation", "RECLAIMED"),
        ("SendOrderConfirmation", "SENT"),
    ]
    assert log[0]["detail"].startswith("from dead, claimed ")
    # And counted
    [emitted] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emitted["NotificationsReclaimed"] == [1.0]


def test_a_mail_ses_refused_leaves_no_claim_behind(
    ses: SESClient, database: Database, lambda_env: Settings, new_order: OrderFactory
) -> None:
    # Given a confirmation SES refuses (its sender is not verified)
    message = NotificationMessage(order_id=new_order(), kind=NotificationKind.ORDER_CONFIRMATION)
    with pytest.raises(ClientError, match="MessageRejected"):
        send_notification(database, ses, "unknown@example.com", message, "first")
    # Then nothing holds the notice, and its next delivery mails it
    assert query(database, "SELECT * FROM notifications") == []
    assert send_notification(database, ses, lambda_env.email_sender, message, "second").sent
    assert sent(ses) == 1


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
