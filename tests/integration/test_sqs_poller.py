"""The local SQS poller: moto's queues and Lambda API, the local invoker running a real consumer.

What AWS's poller does and moto's one-shot push did not: a failed batch is received again after
its visibility timeout, a partial batch response deletes only what succeeded, and a message that
keeps failing ends on the dead-letter queue.
"""

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Queue

from devstack import faults
from devstack.invoker import LocalInvoker, install
from devstack.sqs_poller import SqsPoller, stop_moto_push
from tests.support.waiting import Deadline

FIXTURE = Path(__file__).parent / "lambda_fixture"
REGION = "us-east-1"
MAX_RECEIVES = 3


class Consumer:
    """A queue with a dead-letter queue, mapped to the fixture's consumer (named as the real one, so
    the fault plan accepts it)."""

    def __init__(self, tmp_path: Path, partial_responses: bool = True) -> None:
        self.marker = tmp_path / "deliveries"
        self.sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = self.sqs.create_queue(QueueName="consumer-dlq")["QueueUrl"]
        self.dlq_url = dlq_url
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
        redrive = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": MAX_RECEIVES}
        self.url = self.sqs.create_queue(
            QueueName="consumer",
            Attributes={"VisibilityTimeout": "1", "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="consumer", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        lam = boto3.client("lambda", region_name=REGION)
        lam.create_function(
            FunctionName="SendNotification",
            Runtime="python3.12",
            Role=role,
            Handler="handler.consume",
            Code={"ZipFile": empty_zip()},
            Timeout=5,
        )
        lam.create_event_source_mapping(
            EventSourceArn=queue_arn["Attributes"]["QueueArn"],
            FunctionName="SendNotification",
            BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"] if partial_responses else [],
        )

    def send(self, name: str, fail_until: int = 0) -> None:
        body = {"name": name, "marker": str(self.marker), "fail_until": fail_until}
        self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body))

    def deliveries(self) -> list[str]:
        return sorted(self.marker.read_text().splitlines()) if self.marker.exists() else []

    def waiting(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


def empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "")  # the invoker runs the fixture folder, not this
    return buffer.getvalue()


@pytest.fixture
def invoker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalInvoker]:
    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", LambdaFunction._invoke_lambda)
    local = LocalInvoker(code_dirs={"SendNotification": FIXTURE}, faults_file=tmp_path / "faults.json")
    install(local)
    with mock_aws():
        stop_moto_push()
        yield local
        delattr(Queue, "lambda_event_source_mappings")  # moto's own push again, for other tests
    local.shutdown()


@pytest.fixture
def poller(invoker: LocalInvoker) -> SqsPoller:
    return SqsPoller(DEFAULT_ACCOUNT_ID, REGION)


def deliver_until(poller: SqsPoller, done: Callable[[], Any], what: str, seconds: float = 30) -> None:
    """Run poller rounds until `done()`; the redeliveries wait out a 1 s visibility timeout."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        if not poller.poll_once():
            time.sleep(0.05)


def test_sending_a_message_no_longer_invokes_the_function(poller: SqsPoller, tmp_path: Path) -> None:
    consumer = Consumer(tmp_path)
    consumer.send("a")
    assert consumer.deliveries() == []  # moto's push from inside SendMessage is off
    deliver_until(poller, lambda: consumer.deliveries() == ["a 1"], "the poller's delivery")
    assert consumer.waiting(consumer.url) == 0


def test_a_failed_invocation_is_delivered_again_after_the_visibility_timeout(
    poller: SqsPoller, invoker: LocalInvoker, tmp_path: Path
) -> None:
    consumer = Consumer(tmp_path)
    fault = faults.make_fault(function="SendNotification", kind="error", error_type="SESUnavailable", times=1)
    faults.add_fault(fault, invoker.faults_file)
    consumer.send("a")
    consumer.send("b")
    deliver_until(poller, lambda: len(consumer.deliveries()) == 2, "the batch's second delivery")
    # The first invocation failed before the handler ran; both records came back, received twice.
    assert consumer.deliveries() == ["a 2", "b 2"]
    assert consumer.waiting(consumer.url) == 0
    assert consumer.waiting(consumer.dlq_url) == 0


def test_a_partial_batch_response_redelivers_only_the_failed_record(
    poller: SqsPoller, tmp_path: Path
) -> None:
    consumer = Consumer(tmp_path)
    consumer.send("ok")
    consumer.send("flaky", fail_until=2)
    deliver_until(poller, lambda: "flaky 2" in consumer.deliveries(), "the failed record's redelivery")
    assert consumer.deliveries() == ["flaky 1", "flaky 2", "ok 1"]
    assert consumer.waiting(consumer.url) == 0


def test_a_record_that_keeps_failing_ends_on_the_dead_letter_queue(poller: SqsPoller, tmp_path: Path) -> None:
    consumer = Consumer(tmp_path)
    consumer.send("poison", fail_until=99)
    deliver_until(poller, lambda: consumer.waiting(consumer.dlq_url) == 1, "the move to the DLQ")
    assert consumer.deliveries() == [f"poison {n}" for n in range(1, MAX_RECEIVES + 1)]
    assert consumer.waiting(consumer.url) == 0


def test_without_report_batch_item_failures_a_returned_list_is_ignored(
    poller: SqsPoller, tmp_path: Path
) -> None:
    consumer = Consumer(tmp_path, partial_responses=False)
    consumer.send("flaky", fail_until=2)
    deliver_until(poller, lambda: consumer.deliveries() == ["flaky 1"], "the delivery")
    assert consumer.waiting(consumer.url) == 0  # a success deletes the batch, as Lambda does


def test_the_poller_threads_deliver_until_stopped(poller: SqsPoller, tmp_path: Path) -> None:
    consumer = Consumer(tmp_path)
    poller.start()
    try:
        consumer.send("a")
        # Delivered and deleted: how many times is not the point (two threads and a 1 s visibility
        # timeout: an invocation slower than that on a busy machine is received again, as SQS does)
        Deadline(60).wait_for(
            lambda: "a 1" in consumer.deliveries() and consumer.waiting(consumer.url) == 0,
            "the poller threads to deliver the message and delete it",
            every=0.05,
            details=lambda: f"deliveries: {consumer.deliveries()}",
        )
    finally:
        poller.stop()
