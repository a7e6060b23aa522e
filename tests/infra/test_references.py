"""The stacks share values through SSM parameters, never CloudFormation exports, so a producer may
replace what another stack uses (a target group, a queue, a subnet) without its update failing
with "Export ... cannot be updated as it is in use" (cdk/references.py)."""

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, CfnOutput, Environment, Stack
from aws_cdk import aws_sqs as sqs

from cdk import constants as c
from cdk.app import synthesize
from cdk.references import DEPLOY_ROLE, STACK_VALUES_POLICY, UnsupportedReference, carry_through_ssm
from tests.support.synth import REGION, Synthesized, cdk_context, dump

SSM_STRING = "AWS::SSM::Parameter::Value<String>"


def manifest(directory: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    return document


def written(template: dict[str, Any]) -> dict[str, Any]:
    """The SSM parameters a template writes: name -> value."""
    return {
        r["Properties"]["Name"]: r["Properties"]["Value"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SSM::Parameter"
    }


def read(template: dict[str, Any]) -> dict[str, str]:
    """The SSM-typed parameters a template reads (the CDK's bootstrap version aside): id -> name."""
    return {
        key: p["Default"]
        for key, p in template.get("Parameters", {}).items()
        if p["Type"] == SSM_STRING and key != "BootstrapVersion"
    }


def test_no_template_exports_or_imports_a_value(synthesized: Synthesized) -> None:
    for stack, template in synthesized.templates.items():
        text = dump(template)
        assert "Fn::ImportValue" not in text, stack
        assert "Fn::GetStackOutput" not in text, stack
        assert not [o for o in template.get("Outputs", {}).values() if "Export" in o], stack


def test_every_value_a_stack_reads_is_written_by_a_stack_deployed_before_it(synthesized: Synthesized) -> None:
    artifacts = manifest(synthesized.directory)["artifacts"]
    writers = {name: stack for stack, template in synthesized.templates.items() for name in written(template)}
    reads = 0
    for stack, template in synthesized.templates.items():
        for name in read(template).values():
            # The producer's parameter, named after it; the consumer depends on it, so
            # `cdk deploy --all` updates the producer first and the consumer reads the new value
            producer = writers[name]
            assert name.startswith(f"/{producer}/")
            assert producer in artifacts[stack]["dependencies"]
            assert producer.startswith(f"{c.PROJECT}-{synthesized.env}-")
            reads += 1
    assert reads > 40  # the VPC's subnets and groups, the data stores, queues, functions, alarms' targets
    # Every value written is read somewhere: nothing is published for nobody
    assert set(writers) == {n for t in synthesized.templates.values() for n in read(t).values()}


def test_a_written_value_is_a_reference_to_the_producers_own_resource(synthesized: Synthesized) -> None:
    for template in synthesized.templates.values():
        for name, value in written(template).items():
            (kind,) = value
            assert kind in {"Ref", "Fn::GetAtt"}, name
            target = value[kind] if kind == "Ref" else value[kind][0]
            assert target in template["Resources"], name


def test_the_manifests_name_each_template_by_the_hash_of_what_is_written(synthesized: Synthesized) -> None:
    # The templates changed after the CDK wrote them: their upload keys follow their content
    artifacts = manifest(synthesized.directory)["artifacts"]
    for stack in synthesized.templates:
        properties = artifacts[stack]["properties"]
        content = (synthesized.directory / properties["templateFile"]).read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        assert properties["stackTemplateAssetObjectUrl"].endswith(f"/{digest}.json")
        assets = json.loads((synthesized.directory / f"{stack}.assets.json").read_text())
        assert digest in assets["files"]


def two_stacks(directory: Path, *, fifo: bool, strength: str = "weak") -> dict[str, dict[str, Any]]:
    """A producer with a queue and a consumer that uses its URL, synthesized as the app is."""
    context = cdk_context("dev") | {"@aws-cdk/core:defaultCrossStackReferences": strength}
    app = App(context=context, outdir=str(directory))
    env = Environment(region=REGION)
    producer = Stack(app, "Producer", env=env)
    # A queue's FifoQueue property is replaced, not updated: a new queue, a new URL
    queue = sqs.Queue(producer, "Queue", fifo=fifo or None)
    consumer = Stack(app, "Consumer", env=env)
    sqs.Queue(consumer, "Own")
    CfnOutput(consumer, "QueueUrl", value=queue.queue_url)
    assembly = synthesize(app)
    return {stack.stack_name: stack.template for stack in assembly.stacks}


def test_replacing_a_used_resource_changes_only_its_producer(tmp_path: Path) -> None:
    # Given a queue another stack uses, and the same app with that queue replaced
    before = two_stacks(tmp_path / "before", fifo=False)
    after = two_stacks(tmp_path / "after", fifo=True)
    assert before["Producer"]["Resources"] != after["Producer"]["Resources"]
    # Then the consumer's template is the same: it reads the URL from the producer's parameter,
    # whose value CloudFormation reads again at the consumer's next change set
    assert before["Consumer"] == after["Consumer"]
    (parameter, name) = next(iter(read(after["Consumer"]).items()))
    assert after["Consumer"]["Outputs"]["QueueUrl"]["Value"] == {"Ref": parameter}
    (queue,) = [k for k, r in after["Producer"]["Resources"].items() if r["Type"] == "AWS::SQS::Queue"]
    assert written(after["Producer"]) == {name: {"Ref": queue}}
    # And nothing in either template makes CloudFormation refuse the producer's update; with
    # strong references the consumer would import an export of the URL, which cannot change
    assert "Fn::ImportValue" not in dump(after)
    assert "Export" not in dump(after)
    strong = two_stacks(tmp_path / "strong", fifo=False, strength="strong")
    assert "Fn::ImportValue" in dump(strong["Consumer"])
    assert [o["Value"] for o in strong["Producer"]["Outputs"].values() if "Export" in o] == [{"Ref": queue}]


def test_an_environment_deployed_with_exports_moves_off_them_in_two_deploys(tmp_path: Path) -> None:
    # With `both` (the first deploy of an environment that has exports), the producer keeps its
    # export while the consumer already reads the parameter, so no export in use is removed
    both = two_stacks(tmp_path / "both", fifo=False, strength="both")
    assert [o for o in both["Producer"]["Outputs"].values() if "Export" in o]
    assert written(both["Producer"])
    assert "Fn::ImportValue" not in dump(both["Consumer"])
    assert read(both["Consumer"])
    # The next deploy, with the project's `weak`, drops the export nobody imports any more
    weak = two_stacks(tmp_path / "weak", fifo=False)
    assert "Export" not in dump(weak["Producer"])
    assert weak["Consumer"] == both["Consumer"]


def test_a_reference_to_another_region_is_refused(tmp_path: Path) -> None:
    app = App(context=cdk_context("dev"), outdir=str(tmp_path))
    producer = Stack(app, "Producer", env=Environment(region="us-west-2"))
    queue = sqs.Queue(producer, "Queue")
    consumer = Stack(app, "Consumer", env=Environment(region=REGION))
    sqs.Queue(consumer, "Own")
    CfnOutput(consumer, "QueueUrl", value=queue.queue_url)
    directory = Path(app.synth().directory)
    with pytest.raises(UnsupportedReference, match="across regions"):
        carry_through_ssm(directory)


def test_the_deploy_guide_grants_the_deploy_role_what_the_preflight_checks() -> None:
    guide = (c.REPO_ROOT / "docs" / "deploy.md").read_text()
    assert f"--policy-name {STACK_VALUES_POLICY}" in guide
    assert DEPLOY_ROLE.format(account="$ACCOUNT", region="$AWS_REGION") in guide
    assert f"parameter/{c.PROJECT}-*" in guide
