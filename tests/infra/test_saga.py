"""The saga stack: functions from the single source, least privilege, state machines, queues."""

import json

import pytest

from cdk import constants as c
from cdk.capabilities.saga_function import SECRET_NEEDS, VPC_NETWORK_INTERFACE_ACTIONS
from cdk.capabilities.workflow import placeholders
from order_saga.functions import FUNCTIONS, Needs, function
from order_saga.manifest import ORDER_SAGA
from order_saga.settings import Settings
from order_saga.steps.notification import CLAIM_STALE_AFTER_SECONDS
from tests.support.synth import Synthesized, dump, lambda_function, refs, role_policy, state_machine

ASL = c.STATE_MACHINES
# What in a policy document betrays each need (logical ids and exports contain these names).
NEED_MARKERS = {
    Needs.DATABASE: "DatabaseAppUserSecret",
    Needs.CACHE: "CacheAuthToken",
    Needs.PAYMENT_GATEWAY: "PaymentGatewaySecret",
    Needs.EMAIL: "ses:SendEmail",
    Needs.NOTIFICATION_QUEUE: "QueuesNotifications",
    Needs.SAGA_CONTROL: "QueuesCompensationDlq",
}
NEED_SETTINGS = {
    Needs.DATABASE: {"MYSQL_HOST", "MYSQL_PORT", "MYSQL_DATABASE", "MYSQL_SECRET_ARN", "MYSQL_TLS"},
    Needs.CACHE: {"REDIS_URL", "REDIS_AUTH_SECRET_ARN"},
    Needs.PAYMENT_GATEWAY: {"PAYMENT_GATEWAY_URL", "PAYMENT_GATEWAY_SECRET_ARN"},
    Needs.EMAIL: {"EMAIL_SENDER"},
    Needs.NOTIFICATION_QUEUE: set(),
    Needs.SAGA_CONTROL: {
        "ORDER_SAGA_STATE_MACHINE_ARN",
        "ORDER_CANCELLATION_STATE_MACHINE_ARN",
        "NOTIFICATION_QUEUE_URL",
        "COMPENSATION_DLQ_URL",
    },
}
# What the CDK's paramsAndSecrets sets beside the Parameters and Secrets extension's layer.
EXTENSION_SETTINGS = {
    "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED",
    "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
    "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL",
    "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS",
    "SECRETS_MANAGER_TIMEOUT_MILLIS",
    "SECRETS_MANAGER_TTL",
    "SSM_PARAMETER_STORE_TIMEOUT_MILLIS",
    "SSM_PARAMETER_STORE_TTL",
}
EXTENSION_LAYER = ":layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:"
# The watchdog sends the notices it owes to the notification queue (it does not consume it).
ALSO_GRANTED = {Needs.SAGA_CONTROL: {Needs.NOTIFICATION_QUEUE}}


def test_every_function_is_built_from_its_function_spec(synthesized: Synthesized) -> None:
    for spec in FUNCTIONS:
        # When the template is read
        _, props = lambda_function(synthesized, spec)
        # Then each property comes from the spec, on arm64 and Python 3.12, traced, in the VPC
        assert props["Handler"] == spec.handler
        assert props["Timeout"] == spec.timeout_seconds
        assert props["MemorySize"] == spec.memory_mb
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["VpcConfig"]["SubnetIds"]
        reads_secrets = bool(spec.needs & SECRET_NEEDS)
        assert len(props["Layers"]) == 2 + reads_secrets
        variables = props["Environment"]["Variables"]
        for key, value in spec.all_environment.items():
            assert variables[key] == value
        expected = set(spec.all_environment).union(*(NEED_SETTINGS[need] for need in spec.needs))
        assert set(variables) == expected | (EXTENSION_SETTINGS if reads_secrets else set()), spec.name


def test_every_function_naming_a_secret_reads_it_through_the_extension(synthesized: Synthesized) -> None:
    # Every function of the stack (the steps and the schema migration) whose settings name a secret
    functions = [f["Properties"] for f in synthesized.resources("Saga", "AWS::Lambda::Function").values()]
    readers = [
        props
        for props in functions
        if any(key.endswith("_SECRET_ARN") for key in props.get("Environment", {}).get("Variables", {}))
    ]
    assert len(readers) > len(FUNCTIONS) // 2
    for props in readers:
        # has the extension's arm64 layer and the port setting the reader switches on
        assert [layer for layer in props["Layers"] if EXTENSION_LAYER in dump(layer)], props["FunctionName"]
        variables = props["Environment"]["Variables"]
        assert variables["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] == "2773"
        # and keeps a secret as long as the edge's reader (docs/deploy.md's rotation runbook)
        assert variables["SECRETS_MANAGER_TTL"] == str(Settings.model_fields["secret_max_age"].default)


def test_each_function_role_names_only_its_own_resources(synthesized: Synthesized) -> None:
    log_groups = set(synthesized.resources("Saga", "AWS::Logs::LogGroup"))
    for spec in FUNCTIONS:
        logical_id, props = lambda_function(synthesized, spec)
        role_id = props["Role"]["Fn::GetAtt"][0]
        statements = role_policy(synthesized, role_id)
        named = refs(statements)
        document = dump(statements)
        # Then it writes only to its own log group
        own_logs = {g for g in log_groups if g.startswith(spec.name + "Logs")}
        assert len(own_logs) == 1
        assert named & log_groups == own_logs, spec.name
        # And it reaches exactly the resources its needs name, and no other
        granted = set(spec.needs).union(*(ALSO_GRANTED.get(need, set()) for need in spec.needs))
        for need, marker in NEED_MARKERS.items():
            assert (marker in document) == (need in granted), f"{spec.name}: {need}"
        # And `*` appears only for X-Ray and the network interfaces, whose actions take no ARN
        for statement in statements:
            if statement["Resource"] == "*":
                assert set(statement["Action"]) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
        # And the VPC's network interfaces come from an inline policy of EC2 actions, not from
        # AWSLambdaVPCAccessExecutionRole with its logs actions on every log group
        role = synthesized.template("Saga")["Resources"][role_id]["Properties"]
        assert "ManagedPolicyArns" not in role
        (inline,) = role["Policies"]
        (eni,) = inline["PolicyDocument"]["Statement"]
        assert sorted(eni["Action"]) == sorted(VPC_NETWORK_INTERFACE_ACTIONS)
        assert all(action.startswith("ec2:") for action in eni["Action"])
        # And no other function's role or resources appear
        others = {s.name for s in FUNCTIONS} - {spec.name}
        assert not any(ref.startswith(tuple(others)) for ref in named), spec.name
        assert logical_id not in named


@pytest.mark.parametrize("name", sorted(ASL))
def test_state_machines_are_the_asl_files_with_their_substitutions(
    synthesized: Synthesized, name: str
) -> None:
    _, props = state_machine(synthesized, name)
    # The deployed definition is the file itself, byte for byte
    key = props["DefinitionS3Location"]["Key"]
    assert (synthesized.directory / f"asset.{key}").read_bytes() == ASL[name].read_bytes()
    # Every placeholder of the file is substituted, and nothing else
    assert sorted(props["DefinitionSubstitutions"]) == sorted(placeholders(ASL[name]))
    # Logging at level ALL with execution data in dev, ERROR without it in prod; and X-Ray
    dev = synthesized.env == "dev"
    assert props["LoggingConfiguration"]["Level"] == ("ALL" if dev else "ERROR")
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is dev
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["StateMachineType"] == "STANDARD"


@pytest.mark.parametrize("name", sorted(ASL))
def test_state_machine_role_invokes_exactly_the_named_functions_and_queues(
    synthesized: Synthesized, name: str
) -> None:
    _, props = state_machine(synthesized, name)
    role_id = props["RoleArn"]["Fn::GetAtt"][0]
    statements = role_policy(synthesized, role_id)
    substitutions = props["DefinitionSubstitutions"]
    invoking = [s["Resource"] for s in statements if "lambda:InvokeFunction" in s["Action"]]
    sent = refs([s["Resource"] for s in statements if "sqs:SendMessage" in s["Action"]])
    named = [v for k, v in substitutions.items() if k.endswith("FunctionArn")]
    # Every version (`:*`) of the functions whose versions the definition calls, and no other
    versions = synthesized.resources("Saga", "AWS::Lambda::Version")
    functions = [versions[version]["Properties"]["FunctionName"]["Ref"] for v in named for version in refs(v)]
    (resources,) = invoking
    assert sorted(map(dump, resources)) == sorted(
        dump({"Fn::Join": ["", [{"Fn::GetAtt": [function_id, "Arn"]}, ":*"]]}) for function_id in functions
    )
    assert sent == {v["Ref"] for k, v in substitutions.items() if k.endswith("Url")}


def test_order_saga_carries_catch_and_compensation_states() -> None:
    states = json.loads(ORDER_SAGA.path.read_text())["States"]
    # Every forward step catches into the compensation path
    for step in ("ProcessPayment", "ReserveStock", "ConfirmOrder"):
        assert states[step].get("Catch"), step
    # The two compensations run side by side, in the branches of one Parallel state
    assert {branch["StartAt"] for branch in states["Compensate"]["Branches"]} == {
        "RefundPayment",
        "ReleaseStock",
    }
    for compensation in ("MarkOrderFailed", "MarkNeedsAttention"):
        assert compensation in states
    # A failed compensation ends on the compensation DLQ
    assert "${CompensationDlqUrl}" in dump(states)


def test_notifications_queue_feeds_its_function_with_partial_batch_failures(synthesized: Synthesized) -> None:
    mappings = list(synthesized.resources("Saga", "AWS::Lambda::EventSourceMapping").values())
    assert len(mappings) == 1
    mapping = mappings[0]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "QueuesNotifications" in dump(mapping["EventSourceArn"])
    assert "SendNotification" in dump(mapping["FunctionName"])
    queues = synthesized.resources("Saga", "AWS::SQS::Queue")
    notifications = next(v for k, v in queues.items() if k.startswith("QueuesNotifications"))
    assert "QueuesNotificationDlq" in dump(notifications["Properties"]["RedrivePolicy"])
    # A dead consumer's claim on a notice is stale before its message comes back (steps/notification.py)
    timeout = function("SendNotification").timeout_seconds
    assert timeout < CLAIM_STALE_AFTER_SECONDS < notifications["Properties"]["VisibilityTimeout"]


def test_layers_are_built_for_arm64_python_312(synthesized: Synthesized) -> None:
    layers = synthesized.resources("Saga", "AWS::Lambda::LayerVersion")
    assert len(layers) == 2
    for layer in layers.values():
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    # The dependencies layer really holds aarch64 / CPython 3.12 binaries
    binaries = list((c.DEPS_LAYER_DIR / "python").glob("pydantic_core/*.so"))
    assert binaries
    assert all("cpython-312-aarch64" in b.name for b in binaries)


def test_schema_migrations_run_before_the_functions_and_the_state_machines(synthesized: Synthesized) -> None:
    triggers = synthesized.resources("Saga", "Custom::Trigger")
    assert len(triggers) == 1
    trigger_id = next(iter(triggers))
    later = [state_machine(synthesized, name)[0] for name in ASL]
    later += [lambda_function(synthesized, spec)[0] for spec in FUNCTIONS]
    for logical_id in later:
        depends = synthesized.template("Saga")["Resources"][logical_id].get("DependsOn", [])
        assert trigger_id in depends, logical_id
