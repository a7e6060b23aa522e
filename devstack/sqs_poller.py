"""Lambda's SQS poller for the local endpoint: the delivery of queued notices, as AWS does it.

moto delivers a message to its event-source mapping once, from inside SendMessage: an invocation
that fails is not retried until some other message happens to arrive, and a partial batch
response (`batchItemFailures`) is ignored, so the failed records are deleted with the rest. A
notice could be lost that way, which AWS never does. `install()` takes delivery over:
- moto keeps the mappings (CreateEventSourceMapping, List and Get answer as before), but its
  queues no longer push to them;
- `SqsPoller` threads receive from every enabled SQS mapping, invoke the function with the batch
  (one invocation per batch, with each record's real receive count), and delete what succeeded:
  the whole batch on success, all but the reported `batchItemFailures` on a partial response,
  nothing when the invocation failed;
- what was not deleted becomes visible again after the queue's visibility timeout (scaled like
  the Retry waits, DEVSTACK_RETRY_TIME_SCALE), is received again, and after the queue's
  maxReceiveCount moto's redrive policy moves it to the dead-letter queue.
Delivery is asynchronous, as in AWS: SendMessage (the saga's notify states) no longer waits for
the e-mail to be sent. `retention_without_attributes()` makes moto's receive linear in the
queue's length again (see there).
"""

import inspect
import json
import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

POLLERS = 2  # concurrent batches, as the notification mapping's MaximumConcurrency in cdk/constants.py
IDLE_SECONDS = 0.05  # the pause of a poller that found nothing to receive


def stop_moto_push() -> None:
    """moto's queues keep no mappings of their own any more, so SendMessage pushes to none."""
    from moto.sqs.models import Queue  # noqa: PLC0415 - only the server imports moto

    if "self.lambda_event_source_mappings" not in inspect.getsource(Queue.add_message):
        raise RuntimeError(
            "moto's Queue.add_message no longer pushes through lambda_event_source_mappings: the "
            "pinned moto changed; find where SQS event sources are delivered before upgrading moto"
        )
    # A data descriptor on the class wins over the instance attribute moto's __init__ sets.
    Queue.lambda_event_source_mappings = property(  # type: ignore[assignment]
        lambda _queue: {}, lambda _queue, _mappings: None
    )


def retention_without_attributes() -> None:
    """moto checks each received message's retention period by computing every attribute of its
    queue (the approximate counts among them, each a scan of the queue's messages), so a receive
    was quadratic in the queue's length. This is the same check reading the one attribute."""
    from moto.core.utils import unix_time  # noqa: PLC0415
    from moto.sqs.models import SQSBackend  # noqa: PLC0415

    check = SQSBackend.is_message_valid_based_on_retention_period
    if '["MessageRetentionPeriod"]' not in inspect.getsource(check):
        raise RuntimeError(
            "moto's SQSBackend.is_message_valid_based_on_retention_period changed: the pinned moto "
            "changed; check how it reads the retention period before upgrading moto"
        )

    def is_message_valid_based_on_retention_period(backend: Any, queue_name: str, message: Any) -> bool:
        retention_period = backend.get_queue(queue_name).message_retention_period
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())

    replacement: Any = is_message_valid_based_on_retention_period
    SQSBackend.is_message_valid_based_on_retention_period = replacement  # type: ignore[method-assign]


def record(message: Any, queue_arn: str, region: str) -> dict[str, Any]:
    """One message as Lambda hands it to the function."""
    return {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": {
            "ApproximateReceiveCount": str(message.approximate_receive_count),
            "SentTimestamp": str(message.sent_timestamp),
        },
        "messageAttributes": {},
        "md5OfBody": message.body_md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_ids(payload: bytes | str | None) -> set[str]:
    """The message ids a partial batch response reports as failed."""
    try:
        answer = json.loads(payload or "null")
    except ValueError:
        return set()
    failures = answer.get("batchItemFailures", []) if isinstance(answer, dict) else []
    return {str(item.get("itemIdentifier")) for item in failures if isinstance(item, dict)}


class SqsPoller:
    """Receives from the mapped queues of one account and region and runs their functions."""

    def __init__(self, account_id: str, region: str, visibility_scale: float = 1.0) -> None:
        self.account_id = account_id
        self.region = region
        self.visibility_scale = visibility_scale
        self._receiving = threading.Lock()  # one receive at a time: moto's is not atomic
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, pollers: int = POLLERS) -> None:
        for number in range(pollers):
            thread = threading.Thread(target=self._run, name=f"sqs-poller-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivered = self.poll_once()
            except Exception:  # a poller never dies: the next round tries again
                logger.exception("SQS poller round failed")
                delivered = False
            if not delivered:
                self._stop.wait(IDLE_SECONDS)

    def poll_once(self) -> bool:
        """Deliver at most one batch per mapping; whether any batch was delivered."""
        from moto.awslambda.utils import get_backend  # noqa: PLC0415
        from moto.sqs.models import sqs_backends  # noqa: PLC0415

        lambdas = get_backend(self.account_id, self.region)
        sqs = sqs_backends[self.account_id][self.region]
        delivered = False
        for mapping in lambdas.list_event_source_mappings("", ""):
            if not mapping.enabled or not mapping.event_source_arn.startswith("arn:aws:sqs:"):
                continue
            queue = sqs.queues.get(mapping.event_source_arn.rsplit(":", 1)[1])
            if queue is None:
                continue
            visibility = max(1, round(queue.visibility_timeout * self.visibility_scale))  # type: ignore[attr-defined]
            with self._receiving:
                messages = sqs.receive_message(queue.name, mapping.batch_size or 10, 0, visibility)
            if not messages:
                continue
            delivered = True
            event = {"Records": [record(message, queue.queue_arn, self.region) for message in messages]}
            response_headers: dict[str, str] = {}
            payload = lambdas.invoke(mapping.function_arn, None, json.dumps(event), {}, response_headers)
            if "x-amz-function-error" in response_headers:
                continue  # the whole batch is retried once its visibility timeout is over
            partial = "ReportBatchItemFailures" in (mapping.function_response_types or [])
            failed = failed_ids(payload) if partial else set()
            for message in messages:
                if message.id not in failed:
                    sqs.delete_message(queue.name, str(message.receipt_handle))
        return delivered
