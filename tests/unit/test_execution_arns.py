"""Execution ARNs are derived from the state machine's own ARN, whatever ARN started them: an
execution started through an alias or a version is `...:execution:<machine>:<name>` all the same."""

import pytest

from order_saga.errors import NotAStateMachineArn
from order_saga.workflow import execution_arn_for, unqualified_arn

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:OrderSaga-prod-OrderSaga"
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:OrderSaga-prod-OrderSaga:order-1"


@pytest.mark.parametrize("arn", [MACHINE, f"{MACHINE}:live", f"{MACHINE}:7"])
def test_the_execution_arn_is_the_same_through_the_machine_an_alias_or_a_version(arn: str) -> None:
    assert unqualified_arn(arn) == MACHINE
    assert execution_arn_for(arn, "order-1") == EXECUTION


@pytest.mark.parametrize(
    "arn",
    ["", "OrderSaga", EXECUTION, "arn:aws:states:eu-west-1:123456789012:stateMachine:"],
)
def test_an_arn_that_names_no_state_machine_is_refused_with_what_it_was(arn: str) -> None:
    with pytest.raises(NotAStateMachineArn, match="not a state machine ARN"):
        execution_arn_for(arn, "order-1")
