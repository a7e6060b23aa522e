"""Starting an order's executions: each is named after its order, so it starts at most once."""

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .db import Database
from .errors import NotAStateMachineArn, WorkflowUnavailable
from .repository import log_step

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
else:
    SFNClient = Any


def unqualified_arn(state_machine_arn: str) -> str:
    """The state machine's own ARN, for its ARN or a version's (`...:stateMachine:<name>:7`) or an
    alias's (`...:stateMachine:<name>:live`)."""
    head, found, rest = state_machine_arn.partition(":stateMachine:")
    if not found or not head.startswith("arn:") or not rest:
        raise NotAStateMachineArn(f"not a state machine ARN: {state_machine_arn!r}")
    return f"{head}{found}{rest.split(':', 1)[0]}"


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives the execution `name` of a state machine (a documented format):
    the same whether it was started through the state machine, a version or an alias."""
    return f"{unqualified_arn(state_machine_arn).replace(':stateMachine:', ':execution:', 1)}:{name}"


def start_execution(stepfunctions: SFNClient, state_machine_arn: str, order_id: str) -> str:
    """StartExecution named after the order, which makes a double start impossible. When the
    name is taken, the ARN of that execution is returned, running or closed: whether it finished
    its order is decided from its status (DescribeExecution) by the saga watchdog, not here."""
    try:
        answer = stepfunctions.start_execution(
            stateMachineArn=state_machine_arn, name=order_id, input=json.dumps({"order_id": order_id})
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            return execution_arn_for(state_machine_arn, order_id)
        raise WorkflowUnavailable(f"StartExecution on {state_machine_arn}: {exc}") from exc
    except BotoCoreError as exc:
        raise WorkflowUnavailable(f"StartExecution on {state_machine_arn}: {exc}") from exc
    return answer["executionArn"]


def start_saga(db: Database, stepfunctions: SFNClient, saga_arn: str, order_id: str, starter: str) -> str:
    """A late start of an order's saga (by the reconciler or the watchdog): StartExecution, then
    the starter's mark in saga_log and the execution ARN on an order stored without one."""
    arn = start_execution(stepfunctions, saga_arn, order_id)
    with db.transaction() as cursor:
        cursor.execute(
            "UPDATE orders SET execution_arn = %s WHERE order_id = %s AND execution_arn IS NULL",
            (arn, order_id),
        )
        log_step(cursor, order_id, starter, "STARTED", None)
    return arn
