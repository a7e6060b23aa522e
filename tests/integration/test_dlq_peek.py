"""Reading a DLQ without consuming it: every message, however many, and all of them left there."""

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from order_ops import dlq
from tests.support.moto_env import use_in_process_moto


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_in_process_moto(monkeypatch)
    with mock_aws():
        yield boto3.client("sqs")


def test_peek_sees_every_message_and_leaves_them_all(sqs: Any) -> None:
    # Given 25 messages on a queue (more than one receive returns)
    url = sqs.create_queue(QueueName="compensation-dlq")["QueueUrl"]
    for n in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"order_id": f"order-{n}"}))
    # When it is peeked twice
    first, second = dlq.peek(sqs, url), dlq.peek(sqs, url)
    # Then both see all 25, and all are still there to receive
    assert sorted(m.order_id for m in first) == sorted(f"order-{n}" for n in range(25))
    assert len(second) == 25
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "25"
