"""Values one stack takes from another travel through SSM parameters, never CloudFormation exports.

An export cannot change while another stack imports it, so replacing an exported resource (a
target group, a queue, a subnet) failed the producer's update: "Export ... cannot be updated as
it is in use". The CDK synthesizes the app with weak references (`@aws-cdk/core:
defaultCrossStackReferences` is `weak` in cdk.json): each value a stack takes from another is an
output of the producer, read by the consumer with `Fn::GetStackOutput`. After synthesis,
`carry_through_ssm` moves each such value to an SSM parameter the producer writes
(`AWS::SSM::Parameter`, named `/<producer stack>/<output>`) and the consumer reads as a template
parameter of type `AWS::SSM::Parameter::Value<String>`:

- nothing locks the producer: it may replace the resource, and its parameter takes the new value;
- CloudFormation reads an SSM-typed parameter's current value whenever it creates a change set,
  so the consumer's change set shows the real values (a replacement it implies is planned as
  one, not guessed), and the CDK command line never skips a stack with such parameters ("some
  parameters come from SSM so we have to assume they may have changed"): `cdk deploy --all`
  updates the consumers after their producers, in the stacks' dependency order, which the weak
  references keep in the cloud assembly.

A change set reads SSM-typed parameters with the caller's permissions, and the CDK's deploy role
(from `cdk bootstrap`) may read only the bootstrap's own version parameter: it is granted
`ssm:GetParameters` on the app's parameters once per account and region (`STACK_VALUES_POLICY`,
docs/deploy.md, "One-time bootstrap"), which the preflight checks.

The stack templates change on disk, so each one's asset hash (the S3 key it is uploaded under)
is recomputed in the assets manifest and the cloud assembly manifest.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from order_saga.manifest import PROJECT

GET_STACK_OUTPUT = "Fn::GetStackOutput"
SSM_STRING = "AWS::SSM::Parameter::Value<String>"
STACK_ARTIFACT = "aws:cloudformation:stack"
# The role `cdk deploy` creates change sets with (the default bootstrap qualifier's), and the
# inline policy that lets it read the parameters of every environment's stacks.
DEPLOY_ROLE = "cdk-hnb659fds-deploy-role-{account}-{region}"
STACK_VALUES_POLICY = "order-saga-stack-values"


def stack_values_policy(account: str, region: str) -> dict[str, Any]:
    """The deploy role's grant: read the parameters named after the app's stacks."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ssm:GetParameters",
                "Resource": f"arn:aws:ssm:{region}:{account}:parameter/{PROJECT}-*",
            }
        ],
    }


class UnsupportedReference(ValueError):
    """A reference this app does not make: to another region or account."""


@dataclass(frozen=True, order=True)
class Carried:
    """One value a consumer takes from a producer's output."""

    producer: str  # the producer's stack name
    output: str  # its output's logical id

    @property
    def parameter_name(self) -> str:
        """The SSM parameter that carries it (the deploy role reads `/<stack name prefix>-*`)."""
        return f"/{self.producer}/{self.output}"

    @property
    def template_parameter(self) -> str:
        """The consumer's template parameter that reads it."""
        return re.sub(r"[^A-Za-z0-9]", "", f"{self.producer}{self.output}")

    @property
    def resource(self) -> str:
        """The producer's AWS::SSM::Parameter resource that writes it."""
        return f"Carried{self.output}"


def _replace_reads(value: Any, region: str, found: set[Carried]) -> Any:
    """`value` with every `Fn::GetStackOutput` replaced by a `Ref` to the parameter that carries it."""
    if isinstance(value, dict):
        if set(value) == {GET_STACK_OUTPUT}:
            read = value[GET_STACK_OUTPUT]
            if set(read) - {"StackName", "OutputName", "Region"} or read.get("Region", region) != region:
                raise UnsupportedReference(f"a reference across regions or accounts: {json.dumps(read)}")
            carried = Carried(read["StackName"], read["OutputName"])
            found.add(carried)
            return {"Ref": carried.template_parameter}
        return {key: _replace_reads(inner, region, found) for key, inner in value.items()}
    if isinstance(value, list):
        return [_replace_reads(inner, region, found) for inner in value]
    return value


def _read(template: dict[str, Any], region: str) -> set[Carried]:
    """Make the consumer read each value from its parameter; the values it reads."""
    found: set[Carried] = set()
    for section in ("Resources", "Outputs", "Conditions"):
        if section in template:
            template[section] = _replace_reads(template[section], region, found)
    parameters = template.setdefault("Parameters", {})
    for carried in sorted(found):
        parameters[carried.template_parameter] = {
            "Type": SSM_STRING,
            "Default": carried.parameter_name,
            "Description": f"{carried.output} of {carried.producer}, written there to SSM",
        }
    return found


def _write(template: dict[str, Any], stack: str, carried: set[Carried]) -> None:
    """Make the producer write each value another stack reads to its SSM parameter."""
    outputs = template.get("Outputs", {})
    for value in sorted(c for c in carried if c.producer == stack):
        output = outputs.pop(value.output)
        template["Resources"][value.resource] = {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": value.parameter_name,
                "Type": "String",
                "Value": output["Value"],
                "Description": f"Read by other stacks of the app (cdk/references.py): {value.output}",
            },
        }
    if "Outputs" in template and not outputs:
        del template["Outputs"]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def carry_through_ssm(directory: Path) -> None:
    """Rewrite the cloud assembly in `directory`: every weak reference becomes an SSM parameter."""
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    stacks = {  # by stack name, which `Fn::GetStackOutput` names
        artifact["properties"].get("stackName", artifact_id): artifact
        for artifact_id, artifact in manifest["artifacts"].items()
        if artifact["type"] == STACK_ARTIFACT
    }
    templates = {
        name: json.loads((directory / a["properties"]["templateFile"]).read_text())
        for name, a in stacks.items()
    }
    regions = {name: str(a["environment"]).rsplit("/", 1)[-1] for name, a in stacks.items()}
    carried = {c for name, template in templates.items() for c in _read(template, regions[name])}
    unknown = {c.producer for c in carried} - stacks.keys()
    if unknown:
        raise UnsupportedReference(f"references to stacks outside the app: {', '.join(sorted(unknown))}")
    hashes = {}
    for name, template in templates.items():
        _write(template, name, carried)
        path = directory / stacks[name]["properties"]["templateFile"]
        before = _digest(path.read_text())
        text = json.dumps(template, indent=1)
        path.write_text(text)
        hashes[before] = _digest(text)
    for path in [manifest_path, *directory.glob("*.assets.json")]:
        text = path.read_text()
        for before, after in hashes.items():
            text = text.replace(before, after)
        path.write_text(text)
