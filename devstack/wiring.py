"""Create the saga's AWS resources in the local moto server, from the same sources CDK reads.

The local stack is environment `local`: every function, state machine and queue carries the name
CDK gives an environment (`OrderSaga-local-RefundPayment`, from `order_saga.manifest`). Functions
come from `order_saga.functions.FUNCTIONS`, the state machines from `statemachine/*.asl.json` with
the same substitutions. Every call is idempotent: `aws up` on a running server updates what exists.
"""

import io
import json
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from order_saga import manifest
from order_saga.functions import FUNCTIONS, FunctionSpec, Needs
from order_saga.manifest import (
    COMPENSATION_DLQ,
    LOCAL_ENVIRONMENT,
    NOTIFICATION_DLQ,
    NOTIFICATION_QUEUE,
    Setting,
)
from order_saga.settings import Settings

from .asl import render
from .aws_settings import AwsStackSettings
from .paths import REPO_ROOT

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient


DB_SECRET = manifest.secret_name(LOCAL_ENVIRONMENT, "mysql")
GATEWAY_SECRET = manifest.secret_name(LOCAL_ENVIRONMENT, "payment-gateway")
LAMBDA_ROLE = manifest.resource_name(LOCAL_ENVIRONMENT, "Lambda")
STATES_ROLE = manifest.resource_name(LOCAL_ENVIRONMENT, "States")
RUNTIME = "python3.12"
NOTIFICATION_MAX_RECEIVES = 5
NOTIFICATION_BATCH_SIZE = 10
FOURTEEN_DAYS = 14 * 24 * 3600


ENV_KEYS = (
    *(machine.setting.value for machine in manifest.STATE_MACHINES),
    *(queue.setting.value for queue in manifest.QUEUES),
    Setting.DEPLOYMENT_ENVIRONMENT.value,
    Setting.PAYMENT_GATEWAY_URL.value,
    Setting.PAYMENT_GATEWAY_SECRET_ARN.value,
    "DEVSTACK_MYSQL_SECRET_ARN",
)


@dataclass(frozen=True)
class GatewayAccess:
    """How the functions reach the local gateway server: its URL, and the API key its secret holds."""

    url: str
    api_key: str


@dataclass(frozen=True)
class Wiring:
    function_arns: dict[str, str]  # by step
    state_machine_arns: dict[str, str]  # by setting (ORDER_SAGA_STATE_MACHINE_ARN, ...)
    notification_queue_url: str
    notification_dlq_url: str
    compensation_dlq_url: str
    db_secret_arn: str
    gateway: GatewayAccess
    gateway_secret_arn: str

    def env(self) -> dict[str, str]:
        """What `.devstack/env` gets. Not MYSQL_SECRET_ARN: local tools keep working without moto.
        The gateway's key is read from its secret, by the tools as by the functions."""
        return self.state_machine_arns | {
            Setting.PAYMENT_GATEWAY_URL: self.gateway.url,
            Setting.PAYMENT_GATEWAY_SECRET_ARN: self.gateway_secret_arn,
            NOTIFICATION_QUEUE.setting: self.notification_queue_url,
            NOTIFICATION_DLQ.setting: self.notification_dlq_url,
            COMPENSATION_DLQ.setting: self.compensation_dlq_url,
            Setting.DEPLOYMENT_ENVIRONMENT: LOCAL_ENVIRONMENT,
            "DEVSTACK_MYSQL_SECRET_ARN": self.db_secret_arn,
        }

    def describe(self) -> list[str]:
        return [
            f"functions: {', '.join(sorted(self.function_arns))}",
            *(f"state machine: {arn}" for arn in self.state_machine_arns.values()),
            f"queues: {self.notification_queue_url}, {self.compensation_dlq_url}",
        ]


def queue_name(queue: manifest.Queue) -> str:
    return manifest.resource_name(LOCAL_ENVIRONMENT, queue.name)


def client(service: str, settings: AwsStackSettings) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto accepts any credentials
    )


def function_environment(
    spec: FunctionSpec,
    settings: AwsStackSettings,
    database: Settings,
    made: dict[str, str],
    saga_control: dict[str, str] | None = None,
) -> dict[str, str]:
    """The function's environment: its own, plus what its needs require (the keys CDK sets too).
    `made`: the settings of what the wiring made (secret ARNs, the gateway's URL); `saga_control`
    (state machine ARNs, queue URLs) exists once the state machines do."""
    env = {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "INFO"}
    if Needs.SAGA_CONTROL in spec.needs:
        env |= saga_control or {}
    if Needs.DATABASE in spec.needs:
        env |= {
            Setting.MYSQL_HOST: database.mysql_host,
            Setting.MYSQL_PORT: str(database.mysql_port),
            Setting.MYSQL_SECRET_ARN: made[Setting.MYSQL_SECRET_ARN],
        }
    if Needs.CACHE in spec.needs:
        env[Setting.REDIS_URL] = database.redis_url
    if Needs.PAYMENT_GATEWAY in spec.needs:
        for setting in (Setting.PAYMENT_GATEWAY_URL, Setting.PAYMENT_GATEWAY_SECRET_ARN):
            env[setting] = made[setting]
    if Needs.EMAIL in spec.needs:
        env[Setting.EMAIL_SENDER] = settings.email_sender
    return env | spec.all_environment


def code_zip(spec: FunctionSpec) -> bytes:
    """The function's folder as a deployment package (the local invoker runs the folder itself)."""
    buffer = io.BytesIO()
    folder = REPO_ROOT / spec.code_dir
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.py")) if folder.is_dir() else []:
            archive.write(path, path.relative_to(folder))
        if not archive.namelist():
            archive.writestr("README", f"code of {spec.name} lives in {spec.code_dir}")
    return buffer.getvalue()


def ensure_role(settings: AwsStackSettings, name: str, service: str) -> str:
    iam = client("iam", settings)
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except ClientError:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def ensure_queue(sqs: "SQSClient", name: str, attributes: dict[str, str]) -> tuple[str, str]:
    """(url, arn) of the queue, created or brought to these attributes."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
    except ClientError:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def ensure_secret(settings: AwsStackSettings, name: str, value: str, description: str) -> str:
    """The secret `name` holding `value` (created, or its value replaced)."""
    secrets = client("secretsmanager", settings)
    try:
        arn = secrets.describe_secret(SecretId=name)["ARN"]
        secrets.put_secret_value(SecretId=name, SecretString=value)
    except ClientError:
        arn = secrets.create_secret(Name=name, SecretString=value, Description=description)["ARN"]
    return str(arn)


def ensure_db_secret(settings: AwsStackSettings, database: Settings) -> str:
    """The DB credentials in the format RDS writes them, read by the functions as in AWS."""
    value = json.dumps(
        {
            "engine": "mysql",
            "host": database.mysql_host,
            "port": database.mysql_port,
            "username": database.mysql_user,
            "password": database.mysql_password,
            "dbname": database.mysql_database,
        }
    )
    return ensure_secret(settings, DB_SECRET, value, "Local MariaDB")


def ensure_function(lam: "LambdaClient", spec: FunctionSpec, role: str, env: dict[str, str]) -> str:
    name = spec.deployed_name(LOCAL_ENVIRONMENT)
    config: dict[str, Any] = {
        "FunctionName": name,
        "Role": role,
        "Handler": spec.handler,
        "Description": spec.description,
        "Timeout": spec.timeout_seconds,
        "MemorySize": spec.memory_mb,
        "Environment": {"Variables": env},
        "Runtime": RUNTIME,
    }
    try:
        lam.get_function(FunctionName=name)
    except ClientError:
        created = lam.create_function(**config, Code={"ZipFile": code_zip(spec)}, Architectures=["arm64"])
        return created["FunctionArn"]
    return lam.update_function_configuration(**config)["FunctionArn"]


def ensure_event_source(lam: "LambdaClient", function_name: str, queue_arn: str) -> None:
    existing = lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]
    if any(mapping.get("EventSourceArn") == queue_arn for mapping in existing):
        return
    lam.create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName=function_name,
        BatchSize=NOTIFICATION_BATCH_SIZE,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )


def ensure_state_machine(settings: AwsStackSettings, name: str, definition: str, role: str) -> str:
    sfn = client("stepfunctions", settings)
    for machine in sfn.list_state_machines()["stateMachines"]:
        if machine["name"] == name:
            sfn.update_state_machine(stateMachineArn=machine["stateMachineArn"], definition=definition)
            return str(machine["stateMachineArn"])
    return str(
        sfn.create_state_machine(name=name, definition=definition, roleArn=role, type="STANDARD")[
            "stateMachineArn"
        ]
    )


def wire(settings: AwsStackSettings, database: Settings, gateway: GatewayAccess) -> Wiring:
    sqs: SQSClient = client("sqs", settings)
    lam: LambdaClient = client("lambda", settings)
    consumer_timeout = max(
        spec.timeout_seconds for spec in FUNCTIONS if Needs.NOTIFICATION_QUEUE in spec.needs
    )
    dlq_url, dlq_arn = ensure_queue(
        sqs, queue_name(NOTIFICATION_DLQ), {"MessageRetentionPeriod": str(FOURTEEN_DAYS)}
    )
    queue_url, queue_arn = ensure_queue(
        sqs,
        queue_name(NOTIFICATION_QUEUE),
        {
            # AWS's advice for a Lambda event source: at least six times the function's timeout.
            "VisibilityTimeout": str(6 * consumer_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": NOTIFICATION_MAX_RECEIVES}
            ),
        },
    )
    compensation_url, _ = ensure_queue(
        sqs, queue_name(COMPENSATION_DLQ), {"MessageRetentionPeriod": str(FOURTEEN_DAYS)}
    )
    client("ses", settings).verify_email_identity(EmailAddress=settings.email_sender)
    made = {
        Setting.MYSQL_SECRET_ARN.value: ensure_db_secret(settings, database),
        Setting.PAYMENT_GATEWAY_SECRET_ARN.value: ensure_secret(
            settings, GATEWAY_SECRET, gateway.api_key, "The local payment gateway's API key"
        ),
        Setting.PAYMENT_GATEWAY_URL.value: gateway.url,
    }

    lambda_role = ensure_role(settings, LAMBDA_ROLE, "lambda.amazonaws.com")
    function_arns = {
        spec.name: ensure_function(
            lam, spec, lambda_role, function_environment(spec, settings, database, made)
        )
        for spec in FUNCTIONS
    }
    for spec in FUNCTIONS:
        if Needs.NOTIFICATION_QUEUE in spec.needs:
            ensure_event_source(lam, spec.deployed_name(LOCAL_ENVIRONMENT), queue_arn)

    substitutions = {manifest.arn_substitution(name): arn for name, arn in function_arns.items()} | {
        str(NOTIFICATION_QUEUE.substitution): queue_url,
        str(COMPENSATION_DLQ.substitution): compensation_url,
    }
    states_role = ensure_role(settings, STATES_ROLE, "states.amazonaws.com")
    machines = {
        machine.setting.value: ensure_state_machine(
            settings,
            manifest.resource_name(LOCAL_ENVIRONMENT, machine.name),
            render(machine, substitutions),
            states_role,
        )
        for machine in manifest.STATE_MACHINES
    }
    # The watchdog reads the state machines, which need the functions first: configured last.
    saga_control = machines | {
        NOTIFICATION_QUEUE.setting.value: queue_url,
        COMPENSATION_DLQ.setting.value: compensation_url,
    }
    for spec in FUNCTIONS:
        if Needs.SAGA_CONTROL in spec.needs:
            env = function_environment(spec, settings, database, made, saga_control)
            ensure_function(lam, spec, lambda_role, env)
    return Wiring(
        function_arns,
        machines,
        queue_url,
        dlq_url,
        compensation_url,
        made[Setting.MYSQL_SECRET_ARN],
        gateway,
        made[Setting.PAYMENT_GATEWAY_SECRET_ARN],
    )
