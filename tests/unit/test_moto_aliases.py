"""Executions through state machine versions and aliases in moto (devstack/moto_aliases.py),
driven through boto3 against moto's executing backend in-process (Pass and Wait states only)."""

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

from devstack.moto_aliases import qualifier_of, serve_versions_and_aliases
from tests.support.moto_env import use_in_process_moto

ROLE = "arn:aws:iam::123456789012:role/States"
ACCOUNT_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:Saga"


def definition(result: str, wait_seconds: int = 0) -> str:
    states: dict[str, Any] = {"Answer": {"Type": "Pass", "Result": {"release": result}, "End": True}}
    if wait_seconds:
        states["Hold"] = {"Type": "Wait", "Seconds": wait_seconds, "Next": "Answer"}
    return json.dumps({"StartAt": "Hold" if wait_seconds else "Answer", "States": states})


@pytest.fixture
def sfn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for owner, name in (
        (StepFunctionsParserBackend, "start_execution"),
        (StepFunctionsParserBackend, "list_executions"),
        (StepFunctionResponse, "list_executions"),
        (StepFunctionResponse, "describe_execution"),
    ):
        monkeypatch.setattr(owner, name, getattr(owner, name))  # restored after the test
    use_in_process_moto(monkeypatch)
    serve_versions_and_aliases()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions")


def finished(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{execution_arn} still running"
        time.sleep(0.05)
    return dict(described)


def release(sfn: Any, machine: str, text: str) -> str:
    """Update the definition, publish it and point `live` at the new version (as the wiring does)."""
    version = sfn.update_state_machine(stateMachineArn=machine, definition=text, publish=True)[
        "stateMachineVersionArn"
    ]
    routing = [{"stateMachineVersionArn": version, "weight": 100}]
    sfn.update_state_machine_alias(stateMachineAliasArn=f"{machine}:live", routingConfiguration=routing)
    return str(version)


def test_an_execution_through_the_alias_keeps_its_versions_definition_and_belongs_to_the_machine(
    sfn: Any,
) -> None:
    created = sfn.create_state_machine(
        name="Saga", definition=definition("one", wait_seconds=1), roleArn=ROLE, publish=True
    )
    machine, first = created["stateMachineArn"], created["stateMachineVersionArn"]
    alias = sfn.create_state_machine_alias(
        name="live", routingConfiguration=[{"stateMachineVersionArn": first, "weight": 100}]
    )["stateMachineAliasArn"]

    held = sfn.start_execution(stateMachineArn=alias, name="order-1", input="{}")["executionArn"]
    second = release(sfn, machine, definition("two"))  # while order-1 waits in its Wait state
    later = sfn.start_execution(stateMachineArn=alias, name="order-2", input="{}")["executionArn"]

    assert held == f"{ACCOUNT_MACHINE.replace(':stateMachine:', ':execution:')}:order-1"
    one, two = finished(sfn, held), finished(sfn, later)
    assert (json.loads(one["output"]), json.loads(two["output"])) == ({"release": "one"}, {"release": "two"})
    assert (one["stateMachineVersionArn"], two["stateMachineVersionArn"]) == (first, second)
    assert one["stateMachineAliasArn"] == two["stateMachineAliasArn"] == alias
    assert one["stateMachineArn"] == two["stateMachineArn"] == machine

    listed = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert [(e["name"], e["stateMachineArn"], e["stateMachineVersionArn"]) for e in listed] == [
        ("order-2", machine, second),
        ("order-1", machine, first),
    ]
    assert [e["name"] for e in sfn.list_executions(stateMachineArn=alias)["executions"]] == [
        "order-2",
        "order-1",
    ]
    assert [e["name"] for e in sfn.list_executions(stateMachineArn=first)["executions"]] == ["order-1"]
    assert sfn.list_executions(stateMachineArn=alias, statusFilter="RUNNING")["executions"] == []


def test_a_version_arn_starts_that_version_without_an_alias(sfn: Any) -> None:
    created = sfn.create_state_machine(name="Saga", definition=definition("one"), roleArn=ROLE, publish=True)
    sfn.update_state_machine(stateMachineArn=created["stateMachineArn"], definition=definition("two"))
    started = sfn.start_execution(stateMachineArn=created["stateMachineVersionArn"], name="order-1")
    described = finished(sfn, started["executionArn"])
    assert json.loads(described["output"]) == {"release": "one"}
    assert described["stateMachineVersionArn"] == created["stateMachineVersionArn"]
    assert "stateMachineAliasArn" not in described


def test_a_name_is_unique_across_the_machines_versions(sfn: Any) -> None:
    created = sfn.create_state_machine(name="Saga", definition=definition("one"), roleArn=ROLE, publish=True)
    finished(
        sfn, sfn.start_execution(stateMachineArn=created["stateMachineArn"], name="order-1")["executionArn"]
    )
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=created["stateMachineVersionArn"], name="order-1")


def test_unknown_qualifiers_are_refused(sfn: Any) -> None:
    machine = sfn.create_state_machine(name="Saga", definition=definition("one"), roleArn=ROLE)[
        "stateMachineArn"
    ]
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.start_execution(stateMachineArn=f"{machine}:live", name="order-1")
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=f"{machine}:7", name="order-1")


def test_unqualified_starts_keep_motos_path(sfn: Any) -> None:
    machine = sfn.create_state_machine(name="Saga", definition=definition("one"), roleArn=ROLE)[
        "stateMachineArn"
    ]
    described = finished(sfn, sfn.start_execution(stateMachineArn=machine, name="order-1")["executionArn"])
    assert json.loads(described["output"]) == {"release": "one"}
    assert "stateMachineVersionArn" not in described


@pytest.mark.parametrize(
    ("arn", "qualifier"),
    [(ACCOUNT_MACHINE, ""), (f"{ACCOUNT_MACHINE}:live", "live"), (f"{ACCOUNT_MACHINE}:3", "3")],
)
def test_qualifier_of(arn: str, qualifier: str) -> None:
    assert qualifier_of(arn) == qualifier
