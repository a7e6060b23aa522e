"""The ASL files: valid for Step Functions, and following the saga's rules for retries and names."""

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.config import ManualArgs

from devstack.asl import (
    STATE_MACHINES,
    StateMachineSpec,
    load,
    render,
    substitution_names,
    substitutions_used,
)
from order_saga import errors
from order_saga.functions import FUNCTIONS, function

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SQS_SEND = "arn:aws:states:::sqs:sendMessage"
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
TRANSIENT = {cls.__name__ for cls in errors.TRANSIENT_ERRORS} | LAMBDA_SERVICE_ERRORS
TIMEOUTS = {"States.Timeout", "Sandbox.Timedout"}
COMPENSATIONS = {
    "RefundPayment",
    "ReleaseStock",
    "MarkOrderFailed",
    "MarkOrderCancelled",
    "MarkNeedsAttention",
}
FORWARD_STEPS = {"ProcessPayment", "ReserveStock", "ConfirmOrder"}
BUSINESS = {
    cls.__name__
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.BusinessError)
}

MACHINES = pytest.mark.parametrize("machine", STATE_MACHINES, ids=lambda machine: machine.name)


def cfn_lint(definition: dict[str, Any]) -> list[str]:
    """cfn-lint's Step Functions schema (rule E3601) on the definition, as CDK would deploy it."""
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "StateMachine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/saga",
                    "Definition": definition,
                    "DefinitionSubstitutions": dict.fromkeys(substitution_names(), "value"),
                },
            }
        },
    }
    return [str(match) for match in lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))]


def tasks(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            yield name, state


@MACHINES
def test_definition_passes_the_step_functions_schema(machine: StateMachineSpec) -> None:
    assert cfn_lint(load(machine)) == []


def test_the_schema_check_rejects_a_broken_definition() -> None:
    # Given a definition with an unknown field and a Retry without ErrorEquals
    broken = copy.deepcopy(load(STATE_MACHINES[0]))
    broken["States"]["ProcessPayment"]["TimeoutSecs"] = 3
    del broken["States"]["ProcessPayment"]["Retry"][0]["ErrorEquals"]
    # Then the validator reports both
    problems = "\n".join(cfn_lint(broken))
    assert "TimeoutSecs" in problems
    assert "ErrorEquals" in problems


@MACHINES
def test_every_substitution_is_known_and_every_one_renders(machine: StateMachineSpec) -> None:
    text = machine.path.read_text()
    used = substitutions_used(text)
    assert used <= substitution_names()
    rendered = render(machine, {name: f"value-of-{name}" for name in used})
    assert "${" not in rendered
    json.loads(rendered)


def test_render_refuses_a_missing_substitution() -> None:
    with pytest.raises(KeyError, match="NotificationQueueUrl"):
        render(STATE_MACHINES[0], {})


@MACHINES
def test_every_task_has_a_timeout_longer_than_its_function(machine: StateMachineSpec) -> None:
    for name, state in tasks(load(machine)):
        assert isinstance(state.get("TimeoutSeconds"), int), name
        if state["Resource"] == LAMBDA_INVOKE:
            # Lambda's own timeout answers first (Sandbox.Timedout); the task timeout is the backstop.
            assert state["TimeoutSeconds"] > function(name).timeout_seconds, name


@MACHINES
def test_lambda_tasks_are_named_after_their_function_and_pass_the_order_id(machine: StateMachineSpec) -> None:
    names = {spec.name for spec in FUNCTIONS}
    for name, state in tasks(load(machine)):
        if state["Resource"] != LAMBDA_INVOKE:
            continue
        assert name in names
        assert state["Parameters"]["FunctionName"] == "${" + function(name).arn_substitution + "}"
        assert state["Parameters"]["Payload"]["order_id.$"] == "$.order_id"
        # Only the function's own answer is kept, under the state's own name, so the input survives.
        assert state["ResultSelector"] == {"output.$": "$.Payload"}
        assert state["ResultPath"] == f"$.steps.{name}"


@MACHINES
def test_retries_name_exactly_the_transient_errors_and_never_a_business_error(
    machine: StateMachineSpec,
) -> None:
    for name, state in tasks(load(machine)):
        retriers = [set(retrier["ErrorEquals"]) for retrier in state["Retry"]]
        if state["Resource"] == LAMBDA_INVOKE:
            assert retriers[0] == TRANSIENT, name
            # A compensation (idempotent, must finish) and the pivot ConfirmOrder (a lost answer may
            # hide a committed confirmation) retry a timed-out attempt as well; nothing else does.
            assert retriers[1:] == ([TIMEOUTS] if name in COMPENSATIONS | {"ConfirmOrder"} else []), name
        else:
            assert state["Resource"] == SQS_SEND
            assert retriers == [{"SQS.SdkClientException", "SQS.AmazonSQSException", "States.Timeout"}], name
        for retrier in state["Retry"]:
            assert not set(retrier["ErrorEquals"]) & BUSINESS, name
            assert retrier["JitterStrategy"] == "FULL", name
            assert retrier["BackoffRate"] >= 2, name


def test_forward_steps_are_caught_into_the_compensations() -> None:
    states = load(STATE_MACHINES[0])["States"]
    for name in FORWARD_STEPS:
        [catch] = states[name]["Catch"]
        assert (catch["ErrorEquals"], catch["ResultPath"], catch["Next"]) == (
            ["States.ALL"],
            "$.error",
            "RefundPayment",
        )
    # the compensations run in reverse order of the forward steps
    assert states["RefundPayment"]["Next"] == "ReleaseStock"
    assert states["ReleaseStock"]["Next"] == "WasOrderCancelled"
    assert states["WasOrderCancelled"]["Choices"][0]["StringEquals"] == errors.OrderCancelled.__name__


@MACHINES
def test_a_failing_compensation_ends_in_the_dlq_branch(machine: StateMachineSpec) -> None:
    states = load(machine)["States"]
    for name in COMPENSATIONS - {"MarkNeedsAttention"}:
        if name in states:
            assert states[name]["Catch"][0]["Next"] == "CompensationFailed", name
            assert states[name]["Catch"][0]["ResultPath"] == "$.compensation_error", name
    dlq = states["CompensationFailed"]
    assert dlq["Parameters"]["QueueUrl"] == "${CompensationDlqUrl}"
    assert dlq["Parameters"]["MessageBody"]["context.$"] == "$"
    assert dlq["Next"] == "MarkNeedsAttention"
    assert states[states["MarkNeedsAttention"]["Next"]]["Type"] == "Fail"


@MACHINES
def test_every_state_is_reachable_and_every_transition_lands(machine: StateMachineSpec) -> None:
    definition = load(machine)
    states = definition["States"]
    seen, todo = set(), [definition["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        assert name in states, name
        seen.add(name)
        state = states[name]
        todo += [state[key] for key in ("Next", "Default") if key in state]
        todo += [branch["Next"] for key in ("Catch", "Choices") for branch in state.get(key, [])]
    assert seen == set(states)
