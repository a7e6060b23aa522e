"""The saga watchdog in AWS: EventBridge hands it every execution that closed the wrong way.

A rule on "Step Functions Execution Status Change" (FAILED, TIMED_OUT, ABORTED) of both state
machines invokes the SagaWatchdog function (order_saga.watchdog), which ends the order truthfully
or flags it NEEDS_ATTENTION. The function (built from FUNCTIONS like every step) is granted here
what it needs beyond its database, cache and gateway: reading the two machines' executions,
starting an order saga that never started, and sending to the notification queue and the
compensation DLQ, nothing more. A schedule runs the
watchdog's sweep every 15 minutes for what no event reports (a charge that landed after its
compensation and whose refund failed; an event lost). An event the function
could not handle after EventBridge's and Lambda's retries lands on the watchdog's own DLQ; the
monitoring stack pages on that DLQ (WatchdogDlqNotEmpty) and on the function's error rate, through
the alarm topic like every other alarm.
"""

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk.capabilities.schedule import run_every
from cdk.capabilities.workflow import Workflow
from cdk.nag import acknowledge, logical_id
from order_saga.manifest import Setting

CLOSED_WRONG = ["FAILED", "TIMED_OUT", "ABORTED"]
SWEEP_EVERY = Duration.minutes(15)
SWEEP_GRACE = Duration.minutes(10)  # untouched this long: no execution is still working on it


def grant_execution_reads(role: iam.IRole, machines: Sequence[sfn.StateMachine], reader: str) -> None:
    """DescribeExecution and GetExecutionHistory on any execution of these state machines."""
    stack = Stack.of(role)
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["states:DescribeExecution", "states:GetExecutionHistory"],
            resources=[
                stack.format_arn(
                    service="states",
                    resource="execution",
                    resource_name=f"{machine.state_machine_name}:*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                for machine in machines
            ],
        )
    )
    partition = stack.resolve(stack.partition)  # "aws" when the region is known, else a reference
    partition = partition if isinstance(partition, str) else "<AWS::Partition>"
    for machine in machines:
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:{partition}:states:{stack.region}:<AWS::AccountId>:"
            f"execution:<{logical_id(machine)}.Name>:*]",
            f"DescribeExecution and GetExecutionHistory name an execution; {reader} reads any "
            "execution of this one state machine (each is named after its order), so the name is "
            "the only wildcard.",
        )


class Watchdog(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.Function,
        order_saga: Workflow,
        order_cancellation: Workflow,
        notification_queue: sqs.IQueue,
        compensation_dlq: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        machines = [order_saga.state_machine, order_cancellation.state_machine]
        for key, value in {
            Setting.ORDER_SAGA_STATE_MACHINE_ARN: order_saga.alias_arn,
            Setting.ORDER_CANCELLATION_STATE_MACHINE_ARN: order_cancellation.alias_arn,
            Setting.NOTIFICATION_QUEUE_URL: notification_queue.queue_url,
            Setting.COMPENSATION_DLQ_URL: compensation_dlq.queue_url,
        }.items():
            function.add_environment(key, value)
        self.sweep = run_every(
            self,
            "Sweep",
            function=function,
            every=SWEEP_EVERY,
            payload={"sweep_older_than_seconds": SWEEP_GRACE.to_seconds()},
            description="The watchdog's pass over orders no execution event reports",
        )
        assert function.role is not None
        # Its status, and the end of its history: whether the notify state ran.
        grant_execution_reads(function.role, machines, "the watchdog")
        order_saga.grant_start_execution(function)  # a saga whose StartExecution was refused
        notification_queue.grant_send_messages(function)
        compensation_dlq.grant_send_messages(function)

        self.dlq = sqs.Queue(
            self,
            "Dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dlq,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the watchdog's events; an operator reads it "
            "(order-saga attention) and its depth alarms.",
        )
        self.rule = events.Rule(
            self,
            "ExecutionClosed",
            description="An order saga or cancellation execution failed, timed out or was aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": CLOSED_WRONG,
                    "stateMachineArn": [machine.state_machine_arn for machine in machines],
                },
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                function,
                dead_letter_queue=self.dlq,
                retry_attempts=8,
                max_event_age=Duration.hours(6),
            )
        )
        # An event EventBridge delivered but the function failed on (after Lambda's own retries)
        # lands on the same DLQ.
        lambda_.EventInvokeConfig(
            self,
            "FailedEvents",
            function=function,
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.dlq),
        )
