"""SQS: the notification queue (with its DLQ for poison messages) and the compensation DLQ."""

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk import constants as c
from cdk.nag import acknowledge
from order_saga.functions import function

RETENTION = Duration.days(14)


def _queue(scope: Construct, name: str, **kwargs: object) -> sqs.Queue:
    return sqs.Queue(
        scope,
        name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=RETENTION,
        **kwargs,  # type: ignore[arg-type]
    )


class Queues(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: c.EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.notification_dlq = _queue(self, "NotificationDlq")
        consumer = function("SendNotification")
        self.notification_queue = _queue(
            self,
            "Notifications",
            # Longer than a batch can take, so a message is not handed out twice while in work.
            visibility_timeout=Duration.seconds(6 * consumer.timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.notification_dlq),
        )
        # The saga's CompensationFailed branch puts the full context here; an operator re-drives it
        # with the CLI. It is the end of the line, so it has no DLQ of its own, and in prod it
        # outlives its stack: what it holds is owed to customers.
        self.compensation_dlq = _queue(self, "CompensationDlq", removal_policy=config.kept_removal)
        acknowledge(
            self.compensation_dlq,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of failed compensations (written by the "
            "state machine, read by operators); a further DLQ would hide what it holds.",
        )
