"""The operator tools in AWS: a one-off Fargate task that runs `order-ops` inside the VPC.

It runs the edge's image with the operator tools' entry point, in the functions' subnets and
security group (so it reaches the RDS Proxy and Redis as the watchdog does), with a role of its
own: what `attention`, `audit`, `dlq`, `executions` and `inventory` read and change, nothing more.
An operator starts it with `aws ecs run-task … --overrides` naming the command, in the subnets and
security group the Network stack outputs (docs/deploy.md); its output goes to its log group.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import CfnOutput
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk.capabilities.edge import edge_image
from cdk.capabilities.saga_function import SagaResources, database_environment
from cdk.capabilities.watchdog import grant_execution_reads
from cdk.capabilities.workflow import Workflow
from cdk.nag import acknowledge, acknowledge_task
from order_saga.manifest import Setting

CONTAINER = "Operator"


@dataclass(frozen=True)
class OperatorTargets:
    redriven: Sequence[lambda_.IFunction]  # the compensation steps a DLQ re-drive invokes
    order_saga: Workflow
    order_cancellation: Workflow
    compensation_dlq: sqs.IQueue  # read, re-driven and emptied
    notification_dlq: sqs.IQueue  # read by the auditor
    notification_queue: sqs.IQueue  # a re-drive or a resolved order queues the owed notice


class OperatorTask(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, resources: SagaResources, targets: OperatorTargets
    ) -> None:
        super().__init__(scope, construct_id)
        config = resources.config
        self.cluster = ecs.Cluster(self, "Cluster", vpc=resources.network.vpc)
        acknowledge(self.cluster, "AwsSolutions-ECS4", "One-off operator tasks; their logs are enough.")
        self.task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=256,
            memory_limit_mib=512,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.log_group = logs.LogGroup(
            self, "Logs", retention=config.log_retention, removal_policy=config.kept_removal
        )
        image = edge_image(self)
        gateway = resources.payment_gateway
        self.task.add_container(
            CONTAINER,
            image=ecs.ContainerImage.from_docker_image_asset(image),
            entry_point=["order-ops"],
            command=["--help"],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="operator", log_group=self.log_group),
            environment={
                **database_environment(resources.database),
                Setting.REDIS_URL: resources.cache.url,
                Setting.REDIS_AUTH_SECRET_ARN: resources.cache.auth_secret.secret_arn,
                Setting.PAYMENT_GATEWAY_URL: gateway.url,
                Setting.PAYMENT_GATEWAY_SECRET_ARN: gateway.secret.secret_arn,
                Setting.ORDER_SAGA_STATE_MACHINE_ARN: targets.order_saga.alias_arn,
                Setting.ORDER_CANCELLATION_STATE_MACHINE_ARN: targets.order_cancellation.alias_arn,
                Setting.NOTIFICATION_QUEUE_URL: targets.notification_queue.queue_url,
                Setting.COMPENSATION_DLQ_URL: targets.compensation_dlq.queue_url,
                Setting.DEPLOYMENT_ENVIRONMENT: config.name,
            },
        )
        self._permissions(resources, targets)
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        CfnOutput(self, "TaskFamily", value=self.task.family)

    def _permissions(self, resources: SagaResources, targets: OperatorTargets) -> None:
        role = self.task.task_role
        for secret in (
            resources.database.app_secret,
            resources.cache.auth_secret,
            resources.payment_gateway.secret,
        ):
            secret.grant_read(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[fn.function_arn for fn in targets.redriven]
            )
        )
        machines = (targets.order_saga.state_machine, targets.order_cancellation.state_machine)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:ListExecutions", "states:DescribeStateMachine"],
                resources=[machine.state_machine_arn for machine in machines],
            )
        )
        grant_execution_reads(role, machines, "`order-ops executions`")
        for queue in (targets.compensation_dlq, targets.notification_dlq):
            queue.grant_consume_messages(role)
        targets.notification_queue.grant_send_messages(role)
        # The tools find their queues and state machines by name: listing takes no resource ARN.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:ListQueues", "states:ListStateMachines"], resources=["*"])
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Listing queues and state machines takes no resource ARN.",
        )
        acknowledge_task(self.task, "endpoints, ARNs")
