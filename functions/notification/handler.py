"""Notification service: the consumer of the notification queue (SendOrderConfirmation,
SendFailureAlert and SendCancellationNotice put their messages there).

A message that cannot be handled fails alone: the batch reports it in batchItemFailures, SQS
redelivers only it, and after the queue's maxReceiveCount it lands on the notification DLQ. So
does a notice another invocation is mailing right now (NoticeInFlight). The claimant of a notice
is this invocation and the message it handles.
"""

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from order_saga.clients import get_ses
from order_saga.db import get_database
from order_saga.events import parse
from order_saga.observability import logger, metrics, trace_handler
from order_saga.settings import get_settings
from order_saga.steps import notification

processor = BatchProcessor(event_type=EventType.SQS)


def deliver(record: SQSRecord, lambda_context: LambdaContext) -> None:
    message = parse(notification.NotificationMessage, json.loads(record.body))
    logger.append_keys(correlation_id=message.order_id)
    claimant = f"{lambda_context.aws_request_id}/{record.message_id}"
    outcome = notification.send_notification(
        get_database(), get_ses(), get_settings().email_sender, message, claimant
    )
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=int(outcome.sent))
    metrics.add_metric(name="NotificationsReclaimed", unit=MetricUnit.Count, value=int(outcome.reclaimed))


@logger.inject_lambda_context(clear_state=True)
@trace_handler
@metrics.log_metrics
def send_notification(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=deliver, processor=processor, context=context
    )
    return dict(response)
