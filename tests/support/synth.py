"""Synthesis of the whole app, in-process: no Docker, no network, no AWS credentials.

The inputs other parts of the project provide (handlers, ASL files, the edge's Dockerfile, the
built dependencies layer) must exist: a missing one fails here with what to do, never a skip.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cdk import constants as c
from order_saga.functions import FUNCTIONS, FunctionSpec

if TYPE_CHECKING:
    from aws_cdk import App

# The jsii runtime warns on every start that the machine's Node.js is old; it still works.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

ENVIRONMENTS = ("dev", "prod")
REGION = "eu-west-1"
# What every environment refuses to synthesize without (docs/deploy.md, Prerequisites).
GATEWAY_CONTEXT = {"paymentGatewayUrl": "https://payments.shop.test"}
CUSTOMER_APP_CONTEXT = {
    "customerCallbackUrls": "https://shop.test/signed-in,test.shop.app://callback",
    "customerLogoutUrls": "https://shop.test/",
}
REQUIRED_CONTEXT = GATEWAY_CONTEXT | CUSTOMER_APP_CONTEXT | {"emailSender": "orders@shop.test"}


def missing_inputs() -> list[str]:
    needed = {
        **{
            f"{spec.code_dir}/{spec.handler.split('.')[0]}.py": "the lead's handlers (main)"
            for spec in FUNCTIONS
        },
        "statemachine/order_saga.asl.json": "the state machines (branch aws)",
        "statemachine/order_cancellation.asl.json": "the state machines (branch aws)",
        c.EDGE_DOCKERFILE: "the edge image (branch edge)",
        "build/layers/deps/python": "`make layers`",
    }
    return [f"{path} (from {source})" for path, source in needed.items() if not (c.REPO_ROOT / path).exists()]


@dataclass(frozen=True)
class Synthesized:
    env: str
    directory: Path
    templates: dict[str, dict[str, Any]]  # by stack name

    def template(self, layer: str) -> dict[str, Any]:
        return self.templates[f"{c.PROJECT}-{self.env}-{layer}"]

    def resources(self, layer: str, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template(layer)["Resources"].items() if v["Type"] == kind}

    def source(self, layer: str, value: Any) -> tuple[str, Any]:
        """Where a value the stack `layer` takes from another stack comes from: a `Ref` to one of
        its SSM-typed parameters, followed to the producer's SSM parameter (cdk/references.py).
        Returns the producer's stack name and the value it writes."""
        (parameter,) = refs(value)
        name = self.template(layer)["Parameters"][parameter]["Default"]
        for stack, template in self.templates.items():
            for resource in template["Resources"].values():
                if resource["Type"] == "AWS::SSM::Parameter" and resource["Properties"]["Name"] == name:
                    return stack, resource["Properties"]["Value"]
        raise AssertionError(f"no stack writes the parameter {name} that {layer} reads")


def cdk_context(env: str) -> dict[str, Any]:
    """The context `cdk synth` would pass (cdk.json's), with the environment under test."""
    context: dict[str, Any] = json.loads((c.REPO_ROOT / "cdk.json").read_text())["context"]
    return context | {"env": env, "region": REGION} | REQUIRED_CONTEXT


def build_shipped_app(outdir: Path, env: str = "dev") -> "App":
    """The app as `cdk synth` builds it (cdk.json's context, the environment under test)."""
    missing = missing_inputs()
    if missing:
        pytest.fail(
            "the deployment packages inputs that are not here yet: " + "; ".join(missing), pytrace=False
        )
    from cdk.app import build_app  # noqa: PLC0415 - after the inputs were checked

    return build_app(context=cdk_context(env), outdir=str(outdir))


def run_app(context: dict[str, Any], outdir: Path) -> subprocess.CompletedProcess[str]:
    """`python -m cdk.app` as the CDK command line runs it, with `context`."""
    env = os.environ | {"CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(outdir)}
    return subprocess.run(
        [sys.executable, "-m", "cdk.app"],
        cwd=c.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def synthesize(env: str, outdir: Path) -> Synthesized:
    """The templates as `cdk synth` writes them (cdk/app.py's `synthesize`)."""
    from cdk.app import synthesize as synthesize_app  # noqa: PLC0415 - as build_shipped_app

    assembly = synthesize_app(build_shipped_app(outdir, env))
    templates = {stack.stack_name: stack.template for stack in assembly.stacks}
    return Synthesized(env=env, directory=Path(assembly.directory), templates=templates)


def refs(value: Any) -> set[str]:
    """Every logical id and import a piece of template references (Ref, GetAtt, ImportValue)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::ImportValue" and isinstance(inner, str):
                found.add(inner)
            else:
                found |= refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= refs(inner)
    return found


def dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def lambda_function(synth: Synthesized, spec: FunctionSpec) -> tuple[str, dict[str, Any]]:
    name = f"{c.PROJECT}-{synth.env}-{spec.name}"
    found = [
        (k, v["Properties"])
        for k, v in synth.resources("Saga", "AWS::Lambda::Function").items()
        if v["Properties"].get("FunctionName") == name
    ]
    assert len(found) == 1, f"expected one function named {name}"
    return found[0]


def role_policy(synth: Synthesized, role_id: str) -> list[dict[str, Any]]:
    """The statements of every inline policy attached to the role `role_id`."""
    statements = []
    for policy in synth.resources("Saga", "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def state_machine(synth: Synthesized, name: str) -> tuple[str, dict[str, Any]]:
    full = f"{c.PROJECT}-{synth.env}-{name}"
    for k, v in synth.resources("Saga", "AWS::StepFunctions::StateMachine").items():
        if v["Properties"]["StateMachineName"] == full:
            return k, v["Properties"]
    raise AssertionError(f"no state machine {full}")
