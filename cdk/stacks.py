"""The stacks, split by lifetime: each only composes capability constructs.

network (rarely changes) → data (stateful, protected in prod) → saga (code, changes daily)
→ edge (the container service) → observability (dashboards and alarms, changed freely).
"""

from dataclasses import dataclass

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk import constants as c
from cdk.capabilities.cache import Cache
from cdk.capabilities.database import Database
from cdk.capabilities.edge import EdgeDependencies, EdgeService
from cdk.capabilities.email import Email
from cdk.capabilities.identity import CustomerApp, Identity
from cdk.capabilities.layers import Layers
from cdk.capabilities.monitoring import Monitored, Monitoring
from cdk.capabilities.network import Network
from cdk.capabilities.operator_task import OperatorTargets, OperatorTask
from cdk.capabilities.queues import Queues
from cdk.capabilities.reconciliation import Reconciliation
from cdk.capabilities.saga_function import PaymentGateway, SagaFunction, SagaResources
from cdk.capabilities.schema_migration import SchemaMigration
from cdk.capabilities.watchdog import Watchdog
from cdk.capabilities.workflow import Workflow, WorkflowTargets
from cdk.nag import acknowledge
from order_saga import manifest
from order_saga.functions import FUNCTIONS
from order_saga.manifest import REDRIVEN_STEPS


@dataclass(frozen=True)
class DeploymentOptions:
    """The context values of one deployment (see cdk.json and docs/deploy.md)."""

    config: c.EnvironmentConfig
    region: str  # the account stays open (any account the credentials name); the region is fixed
    email_sender: str
    payment_gateway_url: str  # https: the gateway the functions call (docs/payment-gateway.md)
    customer_app: CustomerApp  # where the hosted UI sends shoppers back (docs/deploy.md)


class OrderSagaStack(Stack):
    """A stack of one environment: in the region the context names, described for the console."""

    def __init__(self, scope: Construct, construct_id: str, options: DeploymentOptions, what: str) -> None:
        super().__init__(
            scope, construct_id, env=Environment(region=options.region), description=f"order-saga: {what}"
        )


class NetworkStack(OrderSagaStack):
    def __init__(self, scope: Construct, construct_id: str, *, options: DeploymentOptions) -> None:
        super().__init__(scope, construct_id, options, "VPC, endpoints, security groups")
        self.network = Network(self, "Network", config=options.config)
        # Where the operator task runs (docs/deploy.md): beside the functions, reaching what they reach.
        private = self.network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        CfnOutput(self, "OperatorSubnetIds", value=",".join(private.subnet_ids))
        CfnOutput(self, "OperatorSecurityGroupId", value=self.network.functions_sg.security_group_id)


class DataStack(OrderSagaStack):
    def __init__(
        self, scope: Construct, construct_id: str, *, options: DeploymentOptions, network: Network
    ) -> None:
        super().__init__(scope, construct_id, options, "RDS MySQL, RDS Proxy, ElastiCache Redis")
        self.database = Database(self, "Database", network=network, config=options.config)
        self.cache = Cache(self, "Cache", network=network, config=options.config)


class SagaStack(OrderSagaStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        options: DeploymentOptions,
        network: Network,
        data: DataStack,
    ) -> None:
        super().__init__(scope, construct_id, options, "functions, state machines, queues")
        self.queues = Queues(self, "Queues", config=options.config)
        self.email = Email(self, "Email", sender=options.email_sender, config=options.config)
        gateway_secret = secretsmanager.Secret(
            self,
            "PaymentGatewaySecret",
            description="The payment gateway's API key (PAYMENT_GATEWAY_SECRET_ARN); paste the real one",
            removal_policy=options.config.kept_removal,
        )
        acknowledge(
            gateway_secret,
            "AwsSolutions-SMG4",
            "The gateway issues this API key; it is rotated at the gateway and pasted here (docs/deploy.md).",
        )
        resources = SagaResources(
            config=options.config,
            network=network,
            layers=Layers(self, "Layers"),
            database=data.database,
            cache=data.cache,
            payment_gateway=PaymentGateway(
                url=options.payment_gateway_url,
                secret=gateway_secret,
            ),
            email=self.email,
            notification_queue=self.queues.notification_queue,
        )
        self.functions = {
            spec.name: SagaFunction(self, spec.name, spec=spec, resources=resources) for spec in FUNCTIONS
        }
        targets = WorkflowTargets(
            functions={
                spec.arn_substitution: self.functions[spec.name].function.current_version
                for spec in FUNCTIONS
            },
            queues={
                str(manifest.NOTIFICATION_QUEUE.substitution): self.queues.notification_queue,
                str(manifest.COMPENSATION_DLQ.substitution): self.queues.compensation_dlq,
            },
        )
        self.workflows = {
            name: Workflow(self, name, definition=path, targets=targets, config=options.config)
            for name, path in c.STATE_MACHINES.items()
        }
        self.order_saga = self.workflows[manifest.ORDER_SAGA.name]
        self.order_cancellation = self.workflows[manifest.ORDER_CANCELLATION.name]
        self.watchdog = Watchdog(
            self,
            "Watchdog",
            function=self.functions[manifest.Step.SAGA_WATCHDOG].function,
            order_saga=self.order_saga,
            order_cancellation=self.order_cancellation,
            notification_queue=self.queues.notification_queue,
            compensation_dlq=self.queues.compensation_dlq,
        )
        self.reconciliation = Reconciliation(
            self, "Reconciliation", function=self.functions[manifest.Step.RECONCILE_PAYMENTS].function
        )
        self.operator = OperatorTask(
            self,
            "Operator",
            resources=resources,
            targets=OperatorTargets(
                redriven=[self.functions[step].function for step in REDRIVEN_STEPS],
                order_saga=self.order_saga,
                order_cancellation=self.order_cancellation,
                compensation_dlq=self.queues.compensation_dlq,
                notification_dlq=self.queues.notification_dlq,
                notification_queue=self.queues.notification_queue,
            ),
        )
        self.migration = SchemaMigration(
            self,
            "SchemaMigration",
            resources=resources,
            before=[
                *(fn.function for fn in self.functions.values()),
                *(workflow.state_machine for workflow in self.workflows.values()),
            ],
        )
        self.app_user_rotation = data.database.rotate_application_user(self, after=self.migration.trigger)


class EdgeStack(OrderSagaStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        options: DeploymentOptions,
        network: Network,
        data: DataStack,
        saga: SagaStack,
    ) -> None:
        super().__init__(scope, construct_id, options, "gRPC edge on ECS Fargate, NLB, Cognito")
        self.identity = Identity(
            self,
            "Identity",
            config=options.config,
            customer_app=options.customer_app,
            email_sender=options.email_sender,
        )
        self.edge = EdgeService(
            self,
            "Edge",
            deps=EdgeDependencies(
                network=network,
                database=data.database,
                cache=data.cache,
                identity=self.identity,
                order_saga=saga.order_saga,
                order_cancellation=saga.order_cancellation,
                compensation_dlq=saga.queues.compensation_dlq,
            ),
            config=options.config,
        )
        CfnOutput(self, "GrpcEndpoint", value=f"{self.edge.nlb.load_balancer_dns_name}:{c.NLB_TLS_PORT}")
        CfnOutput(self, "TokenUrl", value=self.identity.token_url)
        CfnOutput(self, "AuthorizeUrl", value=self.identity.authorize_url)
        CfnOutput(self, "ServiceClientId", value=self.identity.service_client.user_pool_client_id)
        CfnOutput(self, "CustomerClientId", value=self.identity.customer_client.user_pool_client_id)
        CfnOutput(self, "UserPoolId", value=self.identity.user_pool.user_pool_id)
        CfnOutput(self, "PrometheusWorkspace", value=self.edge.prometheus.attr_workspace_id)


class ObservabilityStack(OrderSagaStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        options: DeploymentOptions,
        data: DataStack,
        saga: SagaStack,
        edge: EdgeStack,
    ) -> None:
        super().__init__(scope, construct_id, options, "CloudWatch dashboard and alarms, X-Ray sampling")
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            monitored=Monitored(
                order_saga=saga.order_saga.state_machine,
                order_cancellation=saga.order_cancellation.state_machine,
                functions={name: fn.function for name, fn in saga.functions.items()},
                notification_queue=saga.queues.notification_queue,
                notification_dlq=saga.queues.notification_dlq,
                compensation_dlq=saga.queues.compensation_dlq,
                watchdog_dlq=saga.watchdog.dlq,
                database=data.database.instance,
                proxy=data.database.proxy,
                cache=data.cache.replication_group,
                edge_service=edge.edge.service,
                edge_target_group=edge.edge.target_group,
            ),
            config=options.config,
        )
