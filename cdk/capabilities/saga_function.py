"""A Lambda function of the saga, built from its FunctionSpec, with a role of its own whose
permissions follow from the spec's `needs` and nothing else."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk import constants as c
from cdk.capabilities.cache import Cache
from cdk.capabilities.database import Database
from cdk.capabilities.email import Email
from cdk.capabilities.layers import PYTHON_JUNK, Layers
from cdk.capabilities.network import Network
from cdk.nag import acknowledge
from order_saga.functions import FunctionSpec, Needs
from order_saga.manifest import STATE_MACHINE_STEPS, Setting
from order_saga.settings import Settings

# What Lambda does with the execution role of a function in a VPC: the network-interface half of
# AWSLambdaVPCAccessExecutionRole, without its logs actions on every log group.
VPC_NETWORK_INTERFACE_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


def vpc_network_interfaces() -> iam.PolicyDocument:
    return iam.PolicyDocument(
        statements=[iam.PolicyStatement(actions=list(VPC_NETWORK_INTERFACE_ACTIONS), resources=["*"])]
    )


@dataclass(frozen=True)
class PaymentGateway:
    url: str
    secret: secretsmanager.ISecret


@dataclass(frozen=True)
class SagaResources:
    """Everything a function may need; which parts it gets is decided by its `needs`."""

    config: c.EnvironmentConfig
    network: Network
    layers: Layers
    database: Database
    cache: Cache
    payment_gateway: PaymentGateway
    email: Email
    notification_queue: sqs.IQueue


def database_environment(database: Database) -> dict[str, str]:
    return {
        Setting.MYSQL_HOST: database.proxy.endpoint,
        Setting.MYSQL_PORT: str(c.MYSQL_PORT),
        Setting.MYSQL_DATABASE: c.DATABASE_NAME,
        Setting.MYSQL_SECRET_ARN: database.app_secret.secret_arn,  # the application user, never the master
        Setting.MYSQL_TLS: "true",
    }


def _database(fn: lambda_.Function, r: SagaResources) -> dict[str, str]:
    r.database.app_secret.grant_read(fn)
    return database_environment(r.database)


def _cache(fn: lambda_.Function, r: SagaResources) -> dict[str, str]:
    r.cache.auth_secret.grant_read(fn)
    return {Setting.REDIS_URL: r.cache.url, Setting.REDIS_AUTH_SECRET_ARN: r.cache.auth_secret.secret_arn}


def _payment_gateway(fn: lambda_.Function, r: SagaResources) -> dict[str, str]:
    gateway = r.payment_gateway
    gateway.secret.grant_read(fn)
    return {
        Setting.PAYMENT_GATEWAY_URL: gateway.url,
        Setting.PAYMENT_GATEWAY_SECRET_ARN: gateway.secret.secret_arn,
    }


def _email(fn: lambda_.Function, r: SagaResources) -> dict[str, str]:
    assert isinstance(fn.role, iam.Role)  # SagaFunction gives each function a role of its own
    r.email.grant_send(fn.role)
    return {Setting.EMAIL_SENDER: r.email.sender}


def _notification_queue(fn: lambda_.Function, r: SagaResources) -> dict[str, str]:
    # Partial batch failures: one bad message is retried (then dead-lettered) alone. At most
    # NOTIFICATION_SENDERS invocations poll at once, each sending its batch one e-mail after the
    # other, so the sends stay within the SES sending rate (docs/deploy.md).
    fn.add_event_source(
        event_sources.SqsEventSource(
            r.notification_queue,
            batch_size=10,
            report_batch_item_failures=True,
            max_concurrency=c.NOTIFICATION_SENDERS,
        )
    )
    return {}


def _saga_control(fn: lambda_.Function, r: SagaResources) -> dict[str, str]:  # noqa: ARG001
    """Granted by the Watchdog construct: the state machines are built after the functions."""
    return {}


# The needs whose settings name a Secrets Manager secret: a function with one reads it through the
# AWS Parameters and Secrets Lambda Extension (order_saga/secrets.py), with the function's role.
SECRET_NEEDS = frozenset({Needs.DATABASE, Needs.CACHE, Needs.PAYMENT_GATEWAY})


SECRET_MAX_AGE = Duration.seconds(Settings.model_fields["secret_max_age"].default)


def secrets_extension() -> lambda_.ParamsAndSecretsLayerVersion:
    """The extension's layer (AWS's, for the function's architecture) on its default port (2773),
    keeping a secret as long as the edge's and the tools' reader does (`SECRET_MAX_AGE`)."""
    return lambda_.ParamsAndSecretsLayerVersion.from_version(
        lambda_.ParamsAndSecretsVersions.V1_0_103, secrets_manager_ttl=SECRET_MAX_AGE
    )


# What each need grants and which settings it brings; a need without an entry fails synthesis.
WIRING: Mapping[Needs, Callable[[lambda_.Function, SagaResources], dict[str, str]]] = {
    Needs.DATABASE: _database,
    Needs.CACHE: _cache,
    Needs.PAYMENT_GATEWAY: _payment_gateway,
    Needs.EMAIL: _email,
    Needs.NOTIFICATION_QUEUE: _notification_queue,
    Needs.SAGA_CONTROL: _saga_control,
}


class SagaFunction(Construct):
    """One function in the VPC, arm64, Python 3.12, traced, logging to its own log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        resources: SagaResources,
        code_dir: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        config = resources.config
        self.log_group = logs.LogGroup(
            self, "Logs", retention=config.log_retention, removal_policy=config.kept_removal
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{spec.name}: {', '.join(sorted(spec.needs)) or 'logs only'}",
            inline_policies={"VpcNetworkInterfaces": vpc_network_interfaces()},
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=spec.deployed_name(config.name),
            description=spec.description,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(code_dir or str(c.REPO_ROOT / spec.code_dir), exclude=PYTHON_JUNK),
            handler=spec.handler,
            timeout=Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            layers=resources.layers.all,
            params_and_secrets=secrets_extension() if spec.needs & SECRET_NEEDS else None,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            vpc=resources.network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[resources.network.functions_sg],
            # A runaway step (a retry storm) cannot starve the other steps of the account's
            # concurrency; the total is checked against the account by the preflight.
            reserved_concurrent_executions=(
                config.step_reserved_concurrency if spec.name in STATE_MACHINE_STEPS else None
            ),
            # `current_version` is a new version whenever code, layers or configuration change; the
            # old one stays for the executions of older releases that still call it (workflow.py).
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
        )
        environment = dict(spec.all_environment)
        for need in sorted(spec.needs):
            environment |= WIRING[need](self.function, resources)
        for key, value in environment.items():
            self.function.add_environment(key, value)
        self._acknowledge(spec)

    def _acknowledge(self, spec: FunctionSpec) -> None:
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments/PutTelemetryRecords and EC2's Describe* take no resource ARN, and "
            "Lambda manages the function's network interfaces in subnets it picks at run time.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"{spec.name} runs on Python 3.12 because the dependencies layer's compiled wheels are "
            "CPython 3.12 builds (`make layers`); a newer runtime needs that layer rebuilt and tested.",
        )
