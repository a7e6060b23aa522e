"""The ASL files: valid for Step Functions, and following the saga's rules for retries and names."""

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.config import ManualArgs

from devstack.asl import load, render, substitutions_used
from order_saga import errors
from order_saga.functions import FUNCTIONS, function, substitution_names
from order_saga.manifest import STATE_MACHINES
from order_saga.manifest import StateMachine as StateMachineSpec

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SQS_SEND = "arn:aws:states:::sqs:sendMessage"
THROTTLED = "Lambda.TooManyRequestsException"
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    THROTTLED,
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
# A forward step rides out a database failover before it compensates: RDS Multi-AZ fails over in
# 60-120 s, ElastiCache in about a minute; the budget is three minutes at least, as a floor.
OUTAGE_BUDGET_SECONDS = 180
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
    """Every Task, those of Parallel branches included."""
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from tasks(branch)


def branches(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compensations' Parallel branches, by the compensation each runs."""
    return {branch["StartAt"]: branch for branch in definition["States"]["Compensate"]["Branches"]}


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
        if name in branches(load(machine)):
            # A compensation's branch answers only whether it is still owed.
            assert state["ResultSelector"] == {"step": name, "owed": False}
            assert state["ResultPath"] == "$"
            continue
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
            # A compensation (idempotent, must finish) retries transient faults and timeouts alike,
            # for hours with a capped backoff. A forward step rides out an outage (its budget) and
            # retries a timeout apart: ProcessPayment, whose committed intent makes a timed-out
            # charge safe to retry, and the pivot ConfirmOrder (a lost answer may hide a committed
            # confirmation); ReserveStock compensates a timeout.
            if name in COMPENSATIONS:
                [retrier] = state["Retry"]
                assert retriers == [TRANSIENT | TIMEOUTS], name
                assert (retrier["MaxAttempts"], retrier["MaxDelaySeconds"]) == (60, 300), name
            else:
                # A forward step retries a throttle longer than other faults: it never ran.
                assert name in FORWARD_STEPS, name
                throttled = state["Retry"][0]
                assert (retriers[0], throttled["MaxAttempts"]) == ({THROTTLED}, 8), name
                transient = TRANSIENT - {THROTTLED}
                assert retriers[1:] == ([transient] if name == "ReserveStock" else [transient, TIMEOUTS]), (
                    name
                )
                budget = state["Retry"][1]
                assert budget["JitterStrategy"] == "NONE", name  # a floor, not an average
                assert waits(budget) >= OUTAGE_BUDGET_SECONDS, name
        else:
            assert state["Resource"] == SQS_SEND
            assert retriers == [{"SQS.SdkClientException", "SQS.AmazonSQSException", "States.Timeout"}], name
        for retrier in state["Retry"]:
            assert not set(retrier["ErrorEquals"]) & BUSINESS, name
            assert retrier["JitterStrategy"] == "FULL" or (
                name in FORWARD_STEPS and retrier is state["Retry"][1]
            ), name
            assert retrier["BackoffRate"] >= 2, name


def waits(retrier: dict[str, Any]) -> float:
    """The seconds a retrier waits over all its attempts, with no jitter."""
    return float(
        sum(
            min(retrier["IntervalSeconds"] * retrier["BackoffRate"] ** k, retrier["MaxDelaySeconds"])
            for k in range(retrier["MaxAttempts"])
        )
    )


def test_forward_steps_are_caught_into_the_compensations() -> None:
    states = load(STATE_MACHINES[0])["States"]
    for name in FORWARD_STEPS:
        [catch] = states[name]["Catch"]
        assert (catch["ErrorEquals"], catch["ResultPath"], catch["Next"]) == (
            ["States.ALL"],
            "$.error",
            "Compensate",
        )
    outcome = states[states["Compensate"]["Next"]]
    assert outcome["Choices"][1]["StringEquals"] == errors.OrderCancelled.__name__


@MACHINES
def test_the_compensations_run_side_by_side_and_each_says_what_it_still_owes(
    machine: StateMachineSpec,
) -> None:
    definition = load(machine)
    states = definition["States"]
    # Each compensation has a branch of its own, which always ends (owed or not), so neither
    # compensation waits on the other.
    assert set(branches(definition)) == {"RefundPayment", "ReleaseStock"}
    for name, branch in branches(definition).items():
        [catch] = branch["States"][name]["Catch"]
        assert (catch["ErrorEquals"], catch["Next"]) == (["States.ALL"], f"{name}Owed")
        owed = branch["States"][f"{name}Owed"]
        assert (owed["Type"], owed["Parameters"]["owed"], owed["End"]) == ("Pass", True, True)
    assert states["Compensate"]["ResultPath"] == "$.compensations"
    assert states["Compensate"]["ResultSelector"] == {"RefundPayment.$": "$[0]", "ReleaseStock.$": "$[1]"}
    # and whatever is still owed goes to the DLQ branch before the order is marked
    outcome = states[states["Compensate"]["Next"]]
    assert outcome["Type"] == "Choice"
    assert outcome["Choices"][0]["Next"] == "CompensationFailed"
    assert {rule["Variable"] for rule in outcome["Choices"][0]["Or"]} == {
        "$.compensations.RefundPayment.owed",
        "$.compensations.ReleaseStock.owed",
    }


@MACHINES
def test_a_failing_compensation_ends_in_the_dlq_branch(machine: StateMachineSpec) -> None:
    states = load(machine)["States"]
    for name in COMPENSATIONS - {"MarkNeedsAttention", *branches(load(machine))}:
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
