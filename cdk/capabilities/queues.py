"""SQS: the notification queue (with its DLQ for poison messages) and the compensation DLQ.

Each is named `OrderSaga-<env>-<Name>` from the manifest, as the local stack names its own; a
queue prod RETAINs ends in the stack instance's UUID, so a redeploy after a destroy never meets
the old one (the operator tools find it by its name as a prefix).
"""

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk import constants as c
from cdk.nag import acknowledge
from order_saga import manifest
from order_saga.functions import function

RETENTION = Duration.days(14)


def _queue(
    scope: Construct, queue: manifest.Queue, config: c.EnvironmentConfig, **kwargs: object
) -> sqs.Queue:
    name = manifest.resource_name(config.name, queue.name)
    retained = kwargs.get("removal_policy") == RemovalPolicy.RETAIN
    return sqs.Queue(
        scope,
        queue.name,
        queue_name=f"{name}-{c.stack_instance_id()}" if retained else name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=RETENTION,
        **kwargs,  # type: ignore[arg-type]
    )


class Queues(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: c.EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.notification_dlq = _queue(self, manifest.NOTIFICATION_DLQ, config)
        consumer = function("SendNotification")
        self.notification_queue = _queue(
            self,
            manifest.NOTIFICATION_QUEUE,
            config,
            # Longer than a batch can take, so a message is not handed out twice while in work.
            visibility_timeout=Duration.seconds(6 * consumer.timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=5, queue=self.notification_dlq),
        )
        # The saga's CompensationFailed branch puts the full context here; an operator re-drives it
        # with the CLI. It is the end of the line, so it has no DLQ of its own, and in prod it
        # outlives its stack: what it holds is owed to customers.
        self.compensation_dlq = _queue(
            self, manifest.COMPENSATION_DLQ, config, removal_policy=config.kept_removal
        )
        acknowledge(
            self.compensation_dlq,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of failed compensations (written by the "
            "state machine, read by operators); a further DLQ would hide what it holds.",
        )
