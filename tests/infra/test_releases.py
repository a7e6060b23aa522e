"""Releases: every deploy publishes function versions and a state machine version that calls
exactly those, and new executions start through the alias on it; older versions are kept for the
executions still running on them (docs/deploy.md, "Releases and rollback")."""

from typing import Any

import pytest

from order_saga.functions import FUNCTIONS, function
from order_saga.manifest import ORDER_SAGA, RELEASE_ALIAS, STATE_MACHINES, Setting
from tests.support.synth import Synthesized, dump, lambda_function, refs, role_policy, state_machine

RETAINED = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
STARTED_THROUGH_THE_ALIAS = {"StringEquals": {"states:StateMachineQualifier": RELEASE_ALIAS}}


def of_machine(synth: Synthesized, kind: str, machine_id: str) -> tuple[str, dict[str, Any]]:
    [found] = [
        (k, v)
        for k, v in synth.resources("Saga", kind).items()
        if v["Properties"]["StateMachineArn"] == {"Ref": machine_id}
    ]
    return found


def alias_of(synth: Synthesized, name: str) -> str:
    machine_id, _ = state_machine(synth, name)
    alias_id, _ = of_machine(synth, "AWS::StepFunctions::StateMachineAlias", machine_id)
    return alias_id


def exported(synth: Synthesized, value: dict[str, Any]) -> Any:
    """What a value the edge stack takes from the saga stack stands for there."""
    stack, written = synth.source("Edge", value)
    assert stack.endswith("-Saga")
    return written


@pytest.mark.parametrize("name", [machine.name for machine in STATE_MACHINES])
def test_each_state_machine_publishes_a_retained_version_and_routes_its_alias_to_it(
    synthesized: Synthesized, name: str
) -> None:
    machine_id, _ = state_machine(synthesized, name)
    # A version of the machine's current revision: a new revision replaces it (a new version)
    version_id, version = of_machine(synthesized, "AWS::StepFunctions::StateMachineVersion", machine_id)
    assert version["Properties"]["StateMachineRevisionId"] == {
        "Fn::GetAtt": [machine_id, "StateMachineRevisionId"]
    }
    # and the replaced one is kept: executions started on it run it to the end
    assert {key: version.get(key) for key in RETAINED} == RETAINED
    # The alias sends every new execution to that version
    _, alias = of_machine(synthesized, "AWS::StepFunctions::StateMachineAlias", machine_id)
    assert alias["Properties"]["Name"] == RELEASE_ALIAS
    assert alias["Properties"]["RoutingConfiguration"] == [
        {"StateMachineVersionArn": {"Fn::GetAtt": [version_id, "Arn"]}, "Weight": 100}
    ]
    assert "DeploymentPreference" not in alias["Properties"]


@pytest.mark.parametrize("name", [machine.name for machine in STATE_MACHINES])
def test_definitions_call_the_published_function_versions_which_are_retained(
    synthesized: Synthesized, name: str
) -> None:
    _, props = state_machine(synthesized, name)
    versions = synthesized.resources("Saga", "AWS::Lambda::Version")
    named = {k: v for k, v in props["DefinitionSubstitutions"].items() if k.endswith("FunctionArn")}
    assert named
    for key, value in named.items():
        # A qualified ARN: the Ref of an AWS::Lambda::Version (its ARN ends in `:<number>`)
        (version_id,) = refs(value)
        assert version_id in versions, key
        version = versions[version_id]
        spec = next(spec for spec in FUNCTIONS if spec.arn_substitution == key)
        function_id, _ = lambda_function(synthesized, spec)
        assert version["Properties"]["FunctionName"] == {"Ref": function_id}
        # Kept when the next deploy publishes another: an older state machine version calls it
        assert {k: version.get(k) for k in RETAINED} == RETAINED


def test_the_edge_names_the_aliases_and_may_start_executions_only_through_them(
    synthesized: Synthesized,
) -> None:
    [task] = synthesized.resources("Edge", "AWS::ECS::TaskDefinition").values()
    [edge] = [d for d in task["Properties"]["ContainerDefinitions"] if d["Name"] == "Edge"]
    settings = {v["Name"]: v["Value"] for v in edge["Environment"]}
    for machine in STATE_MACHINES:
        assert exported(synthesized, settings[machine.setting]) == {
            "Fn::GetAtt": [alias_of(synthesized, machine.name), "Arn"]
        }
    starts = [
        s
        for policy in synthesized.resources("Edge", "AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "states:StartExecution" in dump(s["Action"])
    ]
    assert [s["Condition"] for s in starts] == [STARTED_THROUGH_THE_ALIAS]
    # Step Functions authorizes an alias against its state machine's ARN; the condition narrows it
    assert sorted(dump(exported(synthesized, r)) for r in starts[0]["Resource"]) == sorted(
        dump({"Ref": state_machine(synthesized, machine.name)[0]}) for machine in STATE_MACHINES
    )


def test_the_watchdog_and_the_operator_start_through_the_aliases_too(synthesized: Synthesized) -> None:
    _, props = lambda_function(synthesized, function("SagaWatchdog"))
    variables = props["Environment"]["Variables"]
    for machine in STATE_MACHINES:
        assert variables[machine.setting] == {"Fn::GetAtt": [alias_of(synthesized, machine.name), "Arn"]}
    statements = role_policy(synthesized, props["Role"]["Fn::GetAtt"][0])
    [start] = [s for s in statements if s["Action"] == "states:StartExecution"]
    assert start["Condition"] == STARTED_THROUGH_THE_ALIAS
    assert refs(start["Resource"]) == {state_machine(synthesized, ORDER_SAGA.name)[0]}
    [task] = [
        t
        for t in synthesized.resources("Saga", "AWS::ECS::TaskDefinition").values()
        if "order-ops" in dump(t["Properties"]["ContainerDefinitions"])
    ]
    [operator] = task["Properties"]["ContainerDefinitions"]
    settings = {v["Name"]: v["Value"] for v in operator["Environment"]}
    assert settings[Setting.ORDER_SAGA_STATE_MACHINE_ARN] == {
        "Fn::GetAtt": [alias_of(synthesized, ORDER_SAGA.name), "Arn"]
    }
