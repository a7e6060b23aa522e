"""Releases on the local stack, as deploys are in AWS: an execution finishes on the release it
started on (its state machine version, the function versions that version calls, their code),
while new orders run the release the alias `live` routes to.

Release N+1 is published with `order-saga release --source`, as a developer publishes another
checkout, from a copy of the code in which ConfirmOrder answers with a reason code of its own
(the step's answer, which the execution's history records).
The stack is released from the checkout again at the end, for the tier's other tests.
"""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.paths import REPO_ROOT
from devstack.releases import LAYER_DIR
from tests.support.stack import Customer, LocalStack

MARK = "confirmed by the next release"
CONFIRMATION = 'reason_code=row["reason_code"],'  # in confirm_order's answer


@pytest.fixture
def next_release(tmp_path: Path, stack: LocalStack) -> Iterator[Path]:
    """A source tree whose ConfirmOrder differs observably from the checkout's; the stack is
    released from the checkout again afterwards."""
    source = tmp_path / "source"
    for part in ("functions", str(LAYER_DIR)):
        shutil.copytree(REPO_ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    orders = source / LAYER_DIR / "order_saga" / "steps" / "orders.py"
    text = orders.read_text()
    assert text.count(CONFIRMATION) == 1, "ConfirmOrder no longer answers this way: adapt the test"
    orders.write_text(text.replace(CONFIRMATION, f"reason_code={MARK!r},"))
    yield source
    code, output = stack.operator("release")
    assert code == 0, output


def confirmation_code(stack: LocalStack, order_id: str) -> str | None:
    """The reason code of ConfirmOrder's answer, as the execution's history recorded it."""
    events = stack.sfn.get_execution_history(executionArn=stack.execution_of(order_id))["events"]
    [answer] = [
        json.loads(event["taskSucceededEventDetails"]["output"])["Payload"]
        for event in events
        if event["type"] == "TaskSucceeded" and '"CONFIRMED"' in event["taskSucceededEventDetails"]["output"]
    ]
    code: str | None = answer["reason_code"]
    return code


def version_of(stack: LocalStack, order_id: str) -> tuple[str, str]:
    """(stateMachineVersionArn, stateMachineAliasArn) of the order's saga execution."""
    described = stack.sfn.describe_execution(executionArn=stack.execution_of(order_id))
    return described["stateMachineVersionArn"], described["stateMachineAliasArn"]


def test_held_executions_finish_on_their_release_and_new_orders_run_the_next(
    stack: LocalStack, customer: Customer, next_release: Path
) -> None:
    # Given orders whose sagas, started on release N, are held in ReserveStock
    release_n = stack.live_version(stack.saga_arn)
    with stack.held("ReserveStock"):
        held = [customer.create({"sku-1": 1}).order_id for _ in range(2)]
        for order_id in held:
            stack.wait_for_state(order_id, "ReserveStock")
        # When release N+1 is published while they wait
        code, output = stack.operator("release", "--source", str(next_release))
        assert code == 0, output
        release_next = stack.live_version(stack.saga_arn)
        assert release_next != release_n
        assert f"state machine: {stack.saga_arn} -> {release_next} (published)" in output.splitlines()
    # Then the held sagas go on on release N: its definition, its function versions, its code
    for order_id in held:
        assert stack.finish(order_id).status == "SUCCEEDED"
        assert stack.order(order_id)["status"] == "CONFIRMED"
        assert confirmation_code(stack, order_id) is None
        assert version_of(stack, order_id) == (release_n, stack.saga_arn)
    # and a new order runs release N+1's code
    order_id = customer.create({"sku-1": 1}).order_id
    assert stack.finish(order_id).status == "SUCCEEDED"
    assert confirmation_code(stack, order_id) == MARK
    assert version_of(stack, order_id) == (release_next, stack.saga_arn)
    # Every execution belongs to the machine, whichever release ran it
    listed = stack.sfn.list_executions(stateMachineArn=stack.saga_arn)["executions"]
    assert {e["name"] for e in listed} >= {*held, order_id}


def test_a_release_of_unchanged_code_publishes_nothing(stack: LocalStack) -> None:
    live = stack.live_version(stack.saga_arn)
    code, output = stack.operator("release")
    assert code == 0, output
    assert "(published)" not in output
    assert stack.live_version(stack.saga_arn) == live
