"""The local stack wears production's names: every function, state machine and queue it creates
is named as CDK names it in an environment, with `local` where CDK has `dev`."""

from collections.abc import Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from devstack.aws_settings import AwsStackSettings
from devstack.wiring import GatewayAccess, client, wire
from order_saga.settings import Settings
from tests.support.processes import free_port
from tests.support.synth import Synthesized

KINDS = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::SQS::Queue": "QueueName",
}


@pytest.fixture(scope="module")
def local_names() -> Iterator[dict[str, set[str]]]:
    """What `order-saga aws up` creates, by kind: its wiring run against a moto server of its own."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        settings = AwsStackSettings(moto_port=port)
        wire(
            settings,
            Settings(mysql_password="local", redis_url="redis://127.0.0.1:1/0"),
            GatewayAccess("http://127.0.0.1:1", "sk_test_local"),
        )
        lam, sfn, sqs = (client(name, settings) for name in ("lambda", "stepfunctions", "sqs"))
        yield {
            "AWS::Lambda::Function": {f["FunctionName"] for f in lam.list_functions()["Functions"]},
            "AWS::StepFunctions::StateMachine": {
                m["name"] for m in sfn.list_state_machines()["stateMachines"]
            },
            "AWS::SQS::Queue": {url.rsplit("/", 1)[-1] for url in sqs.list_queues()["QueueUrls"]},
        }
    finally:
        server.stop()


def literal(name: Any) -> str:
    """A name as a string: a `Fn::Join` of literals and tokens (a stack's UUID) keeps its literals."""
    if isinstance(name, dict) and "Fn::Join" in name:
        separator, parts = name["Fn::Join"]
        return str(separator).join(part if isinstance(part, str) else "{token}" for part in parts)
    return name if isinstance(name, str) else "(unnamed)"


def cdk_names(synth: Synthesized, kind: str) -> set[str]:
    return {
        literal(resource["Properties"].get(KINDS[kind]))
        for template in synth.templates.values()
        for resource in template["Resources"].values()
        if resource["Type"] == kind
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_local_stack_names_every_resource_as_cdk_names_it(
    synthesized: Synthesized, local_names: dict[str, set[str]], kind: str
) -> None:
    # Given the names the local stack created, with `local` where CDK has the environment's name
    local = {name.replace("-local-", f"-{synthesized.env}-") for name in local_names[kind]}
    # Then CDK gives each the same name (a queue prod retains adds its stack's UUID after it)
    deployed = cdk_names(synthesized, kind)
    unmatched = {n for n in local if not any(d == n or d.startswith(f"{n}-{{token}}") for d in deployed)}
    assert local
    assert not unmatched, (sorted(unmatched), sorted(deployed))
