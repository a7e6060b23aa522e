"""What blocks a deployment, or a second one: physical names, prerequisites, feature flags, and
a migration that must run again when it changes (what blocked a second deploy)."""

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import aws_cdk
import pytest
from aws_cdk import App

from cdk import constants as c
from cdk.app import options_from_context
from cdk.stacks import DataStack, DeploymentOptions, NetworkStack, SagaStack
from tests.support.synth import REQUIRED_CONTEXT, Synthesized, cdk_context, run_app

CDK_JSON = json.loads((c.REPO_ROOT / "cdk.json").read_text())
# Kept at the project's value: weak references, which cdk/references.py carries through SSM
# parameters instead of CloudFormation exports (docs/decisions.md).
PROJECT_FLAGS = {"@aws-cdk/core:defaultCrossStackReferences": "weak"}


def all_resources(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        f"{stack}/{key}": value
        for stack, template in synth.templates.items()
        for key, value in template["Resources"].items()
    }


def is_reference(value: Any) -> bool:
    """A property naming another resource (a function version's FunctionName), not its own name."""
    return isinstance(value, dict) and set(value) == {"Ref"}


def test_the_proxy_is_named_after_the_environment(synthesized: Synthesized) -> None:
    (proxy,) = synthesized.resources("Data", "AWS::RDS::DBProxy").values()
    # Proxy names are unique per account and region: dev and prod side by side need two
    assert proxy["Properties"]["DBProxyName"] == f"{c.PROJECT}-{synthesized.env}"


def test_no_retained_resource_has_a_fixed_name(synthesized: Synthesized) -> None:
    # A RETAINed resource outlives its stack; a fixed name would make the next deploy fail with
    # "already exists". Every name of one is left to CloudFormation or derived from the stack id.
    retained = {k: v for k, v in all_resources(synthesized).items() if v.get("DeletionPolicy") == "Retain"}
    names = {
        f"{key}.{prop}": value
        for key, resource in retained.items()
        for prop, value in resource.get("Properties", {}).items()
        if prop.endswith("Name") and prop not in {"DBName"} and not is_reference(value)
    }
    if synthesized.env == "prod":
        # prod keeps its logs, secrets and the compensation DLQ, and names some of them
        assert names, sorted(retained)
    else:
        # dev's kept removal is DESTROY: whatever it still retains carries no name of its own
        assert not names, names
    fixed = {name: value for name, value in names.items() if "AWS::StackId" not in json.dumps(value)}
    assert not fixed


def test_state_machine_log_groups_are_unique_to_the_stack_instance(synthesized: Synthesized) -> None:
    groups = synthesized.resources("Saga", "AWS::Logs::LogGroup")
    named = [g["Properties"]["LogGroupName"] for g in groups.values() if "LogGroupName" in g["Properties"]]
    assert len(named) == len(c.STATE_MACHINES)
    for name in named:
        text = json.dumps(name)
        assert "/aws/vendedlogs/states/" in text
        assert "AWS::StackId" in text


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ({"emailSender": ""}, "emailSender=<an address SES can verify"),
        (
            {"emailSender": "orders@example.com"},
            "not orders@example.com: an example domain is never verified",
        ),
        ({"emailSender": "orders"}, "emailSender=<an address SES can verify"),
        ({"paymentGatewayUrl": ""}, "paymentGatewayUrl=https://"),
        ({"customerCallbackUrls": ""}, "customerCallbackUrls"),
    ],
)
def test_an_environment_without_its_prerequisites_fails_with_one_clear_line(
    tmp_path: Path, env: str, missing: dict[str, str], named: str
) -> None:
    # Given the environment's context with one prerequisite left empty or at an example value
    context = cdk_context(env) | missing
    # When the app is run as `cdk synth` runs it
    result = run_app(context, tmp_path)
    # Then it stops before synthesizing anything, with one line naming the setting: no
    # environment runs without a real gateway's API, nor a sender SES can verify
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("b'")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {env} needs -c ")
    assert named in lines[0]
    assert not list(tmp_path.glob("*.template.json"))


def test_every_environment_calls_its_named_gateway_and_prod_sends_from_a_verified_domain(
    synthesized: Synthesized,
) -> None:
    functions = synthesized.resources("Saga", "AWS::Lambda::Function").values()
    gateways = {
        f["Properties"]["Environment"]["Variables"].get("PAYMENT_GATEWAY_URL")
        for f in functions
        if "Environment" in f["Properties"]
    } - {None}
    assert gateways == {REQUIRED_CONTEXT["paymentGatewayUrl"]}
    identities = synthesized.resources("Saga", "AWS::SES::EmailIdentity")
    if synthesized.env == "prod":
        assert not identities  # the verified domain is a prerequisite, referred to, not created
        assert f"identity/{REQUIRED_CONTEXT['emailSender'].split('@')[1]}" in json.dumps(
            synthesized.template("Saga")
        )
    else:
        assert len(identities) == 1


def test_the_edge_tls_secret_is_a_named_prerequisite(synthesized: Synthesized) -> None:
    # The task reads the secret by the name docs/deploy.md tells the operator to create, and
    # `make deploy` checks it first (cdk/preflight.py, tests/integration/test_preflight.py)
    task = json.dumps(synthesized.resources("Edge", "AWS::ECS::TaskDefinition"))
    assert f"secret:{c.edge_tls_secret_name(synthesized.env)}" in task
    assert c.edge_tls_secret_name("<env>") in (c.REPO_ROOT / "docs" / "deploy.md").read_text()


def recommended_flags() -> dict[str, Any]:
    """The feature flags `cdk init` writes for the installed aws-cdk-lib."""
    bundle = next(Path(aws_cdk.__file__).parent.glob("_jsii/aws-cdk-lib@*.jsii.tgz"))
    with tarfile.open(bundle) as archive:
        member = archive.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        flags: dict[str, Any] = json.load(member)
    return flags


def test_cdk_json_enables_the_flags_a_new_project_gets() -> None:
    context = CDK_JSON["context"]
    expected = recommended_flags() | PROJECT_FLAGS
    assert "@aws-cdk/aws-lambda:recognizeLayerVersion" in expected
    assert {k: context.get(k) for k in expected} == expected


def synthesize_saga(layer_dir: Path, outdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The Saga stack (and what it needs) with the shared layer taken from `layer_dir`."""
    monkeypatch.setattr(c, "COMMON_LAYER_DIR", layer_dir)
    app = App(context=cdk_context("dev"), outdir=str(outdir))
    options: DeploymentOptions = options_from_context(app)
    network = NetworkStack(app, "N", options=options)
    data = DataStack(app, "D", options=options, network=network.network)
    SagaStack(app, "S", options=options, network=network.network, data=data)
    template: dict[str, Any] = app.synth().get_stack_by_name("S").template
    return template


def trigger_handler(template: dict[str, Any]) -> Any:
    (trigger,) = [r for r in template["Resources"].values() if r["Type"] == "Custom::Trigger"]
    return trigger["Properties"]["HandlerArn"]


def test_a_changed_migration_changes_what_the_trigger_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a copy of the shared layer, synthesized once
    layer = tmp_path / "common"
    shutil.copytree(c.COMMON_LAYER_DIR, layer, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    before = trigger_handler(synthesize_saga(layer, tmp_path / "a", monkeypatch))
    # When a migration file changes (and nothing else)
    (migration,) = sorted((layer / "python" / "order_saga" / "migrations").glob("0001_*.sql"))
    migration.write_text(migration.read_text() + "\n-- changed\n")
    after = trigger_handler(synthesize_saga(layer, tmp_path / "b", monkeypatch))
    # Then the trigger runs a new version of the migration function, so it runs again
    assert before != after
    assert "Version" in json.dumps(after)


def test_the_notifier_may_send_from_the_sender_and_in_dev_to_the_sandboxs_recipients(
    synthesized: Synthesized,
) -> None:
    sends = [
        statement
        for policy in synthesized.resources("Saga", "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "ses:SendEmail" in statement["Action"]
    ]
    [statement] = sends  # the notifier's, and no other function's
    resource = json.dumps(statement["Resource"])
    if synthesized.env == "dev":
        # the SES sandbox authorizes a send against each recipient's identity too
        assert resource.endswith(':identity/*"]]}')
        assert statement["Condition"] == {
            "StringEquals": {"ses:FromAddress": REQUIRED_CONTEXT["emailSender"]}
        }
    else:
        assert resource.endswith(f':identity/{REQUIRED_CONTEXT["emailSender"].split("@")[1]}"]]}}')
        assert "Condition" not in statement
