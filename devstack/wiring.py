"""Create the saga's AWS resources in the local moto server, from the same sources CDK reads.

The local stack is environment `local`: every function, state machine and queue carries the name
CDK gives an environment (`OrderSaga-local-RefundPayment`, from `order_saga.manifest`). Functions
come from `order_saga.functions.FUNCTIONS`, the state machines from `statemachine/*.asl.json` with
the same substitutions. Every call is idempotent: `aws up` on a running server updates what exists.

Each wiring is a release, as a deploy is in AWS: a function whose code (devstack/releases.py)
or configuration changed gets a new published version, the definitions name the functions'
version ARNs, a changed definition publishes a new state machine version, and the alias `live`
(`manifest.RELEASE_ALIAS`) routes to it. The edge and the watchdog start executions through the
alias; executions already running finish on the versions they started on.
"""

import json
from dataclasses import dataclass
from pathlib import Path
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
from .releases import Package, package, unpack

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_stepfunctions.type_defs import RoutingConfigurationListItemTypeDef


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
class Published:
    """A version the wiring runs: its ARN, and whether this wiring published it."""

    arn: str
    new: bool

    def describe(self) -> str:
        return f"{self.arn} ({'published' if self.new else 'unchanged'})"


@dataclass(frozen=True)
class Wiring:
    function_versions: dict[str, Published]  # by step
    state_machine_arns: dict[str, str]  # the alias ARNs, by setting (ORDER_SAGA_STATE_MACHINE_ARN, ...)
    state_machine_versions: dict[str, Published]  # the versions the aliases route to, by setting
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
            *(f"function: {published.describe()}" for _, published in sorted(self.function_versions.items())),
            *(
                f"state machine: {alias} -> {self.state_machine_versions[setting].describe()}"
                for setting, alias in self.state_machine_arns.items()
            ),
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


def ensure_function(
    lam: "LambdaClient", spec: FunctionSpec, role: str, env: dict[str, str], code: Package
) -> Published:
    """The function with this configuration and code, and its version that runs them: a new one
    when either changed (as CDK's `currentVersion`), else the latest published."""
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
    unpack(code)  # before the upload: a published version's code is always on disk
    try:
        current = lam.get_function(FunctionName=name)["Configuration"]
    except ClientError:
        lam.create_function(**config, Code={"ZipFile": code.archive}, Architectures=["arm64"])
    else:
        if any(current.get(key) != value for key, value in config.items() if key != "FunctionName"):
            lam.update_function_configuration(**config)
        if current["CodeSha256"] != code.sha256:
            lam.update_function_code(FunctionName=name, ZipFile=code.archive)
    published_before = {v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]}
    version = lam.publish_version(FunctionName=name)  # moto publishes only if something changed
    return Published(version["FunctionArn"], version["Version"] not in published_before)


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


def ensure_state_machine(sfn: "SFNClient", name: str, definition: str, role: str) -> tuple[str, Published]:
    """(the alias ARN, the version it routes to) of the machine `name` with this definition: a
    new version when the definition differs from the one the alias routes to."""
    machine_arn = next(
        (m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if m["name"] == name), None
    )
    if machine_arn is None:
        created = sfn.create_state_machine(
            name=name, definition=definition, roleArn=role, type="STANDARD", publish=True
        )
        return create_alias(sfn, created["stateMachineVersionArn"]), Published(
            created["stateMachineVersionArn"], new=True
        )
    alias_arn = f"{machine_arn}:{manifest.RELEASE_ALIAS}"
    try:
        routes = sfn.describe_state_machine_alias(stateMachineAliasArn=alias_arn)["routingConfiguration"]
    except sfn.exceptions.ResourceNotFound:
        routes = []
    live = [route["stateMachineVersionArn"] for route in routes]
    if len(live) == 1 and sfn.describe_state_machine(stateMachineArn=live[0])["definition"] == definition:
        return alias_arn, Published(live[0], new=False)
    version = sfn.update_state_machine(stateMachineArn=machine_arn, definition=definition, publish=True)[
        "stateMachineVersionArn"
    ]
    if routes:
        sfn.update_state_machine_alias(stateMachineAliasArn=alias_arn, routingConfiguration=all_to(version))
    else:
        create_alias(sfn, version)
    return alias_arn, Published(version, new=True)


def all_to(version_arn: str) -> list["RoutingConfigurationListItemTypeDef"]:
    """An alias's routing: every execution to this version (no canary, as in AWS)."""
    return [{"stateMachineVersionArn": version_arn, "weight": 100}]


def create_alias(sfn: "SFNClient", version_arn: str) -> str:
    """The alias `live` of the version's machine, routing 100% to it."""
    return str(
        sfn.create_state_machine_alias(name=manifest.RELEASE_ALIAS, routingConfiguration=all_to(version_arn))[
            "stateMachineAliasArn"
        ]
    )


def wire(
    settings: AwsStackSettings, database: Settings, gateway: GatewayAccess, source: Path = REPO_ROOT
) -> Wiring:
    """Every resource, with the functions' code taken from the source tree `source`."""
    sqs: SQSClient = client("sqs", settings)
    lam: LambdaClient = client("lambda", settings)
    sfn: SFNClient = client("stepfunctions", settings)
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

    def publish(spec: FunctionSpec, saga_control: dict[str, str] | None = None) -> Published:
        env = function_environment(spec, settings, database, made, saga_control)
        return ensure_function(lam, spec, lambda_role, env, package(spec, source))

    # The watchdog reads the state machines, which need the other functions first: it is
    # published last (no definition calls it).
    steps = [spec for spec in FUNCTIONS if Needs.SAGA_CONTROL not in spec.needs]
    functions = {spec.name: publish(spec) for spec in steps}
    for spec in FUNCTIONS:
        if Needs.NOTIFICATION_QUEUE in spec.needs:
            ensure_event_source(lam, spec.deployed_name(LOCAL_ENVIRONMENT), queue_arn)

    # The definitions call function versions, as CDK's substitutions do (currentVersion).
    substitutions = {manifest.arn_substitution(name): v.arn for name, v in functions.items()} | {
        str(NOTIFICATION_QUEUE.substitution): queue_url,
        str(COMPENSATION_DLQ.substitution): compensation_url,
    }
    states_role = ensure_role(settings, STATES_ROLE, "states.amazonaws.com")
    machines = {
        machine.setting.value: ensure_state_machine(
            sfn,
            manifest.resource_name(LOCAL_ENVIRONMENT, machine.name),
            render(machine, substitutions),
            states_role,
        )
        for machine in manifest.STATE_MACHINES
    }
    aliases = {setting: alias for setting, (alias, _) in machines.items()}
    saga_control = aliases | {
        NOTIFICATION_QUEUE.setting.value: queue_url,
        COMPENSATION_DLQ.setting.value: compensation_url,
    }
    for spec in FUNCTIONS:
        if Needs.SAGA_CONTROL in spec.needs:
            functions[spec.name] = publish(spec, saga_control)
    return Wiring(
        functions,
        aliases,
        {setting: version for setting, (_, version) in machines.items()},
        queue_url,
        dlq_url,
        compensation_url,
        made[Setting.MYSQL_SECRET_ARN],
        gateway,
        made[Setting.PAYMENT_GATEWAY_SECRET_ARN],
    )
