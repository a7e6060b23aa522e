"""State machine versions and aliases in moto, as Step Functions runs executions through them.

moto (pinned) publishes state machine versions and creates aliases, but its executing backend
cannot start an execution on either: StartExecution resolves an unqualified ARN only (a version
ARN fails in its name check, an alias ARN is "does not exist"), and ListExecutions and
DescribeExecution know nothing of versions. `serve_versions_and_aliases()` (called by
devstack/moto_server.py before it serves) makes them behave as the Step Functions API reference
and "How Step Functions associates executions with a version or alias" describe them:

- StartExecution on `<machine>:<version>` runs that version; on `<machine>:<alias>` it runs the
  version the alias routes to (by the routing weights). The definition is the version's, which
  never changes once published, so an execution keeps the definition it started with whatever
  is published or updated after it.
- The execution belongs to the machine: its ARN is `…:execution:<machine>:<name>`, a name is
  unique across the machine's versions, and DescribeExecution and ListExecutions report the
  unqualified `stateMachineArn` with `stateMachineVersionArn` and (started through an alias)
  `stateMachineAliasArn` beside it.
- ListExecutions on a version or alias ARN lists the executions associated with it.

Unqualified starts keep moto's own path (the latest definition, no version). The methods
replaced are moto's public backend and response methods, which tests/unit/test_moto_aliases.py
runs through boto3.
"""

import datetime
import random
import uuid
from typing import Any, cast

from order_saga.workflow import execution_arn_for, unqualified_arn

# What this module stores on moto's execution objects (absent: not started through a qualifier).
VERSION_ARN = "state_machine_version_arn"
ALIAS_ARN = "state_machine_alias_arn"
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def qualifier_of(state_machine_arn: str) -> str:
    """`live` of `…:stateMachine:OrderSaga:live`, `3` of `…:OrderSaga:3`, "" when unqualified."""
    return state_machine_arn[len(unqualified_arn(state_machine_arn)) :].lstrip(":")


def routed_version(alias: Any) -> str:
    """The version ARN this start goes to, drawn by the alias's routing weights (as AWS routes)."""
    routes = alias.routing_configuration
    weights = [int(route["weight"]) for route in routes]
    chosen = random.choices(routes, weights=weights)[0]  # noqa: S311 - traffic split, not security
    return str(chosen["stateMachineVersionArn"])


def associated_with(execution: Any, state_machine_arn: str) -> bool:
    """Whether ListExecutions on this (possibly qualified) ARN lists the execution."""
    if not qualifier_of(state_machine_arn):
        return True
    return state_machine_arn in (getattr(execution, VERSION_ARN, None), getattr(execution, ALIAS_ARN, None))


def release_fields(execution: Any) -> dict[str, str]:
    """stateMachineVersionArn / stateMachineAliasArn of the execution, when it has them."""
    fields = {"stateMachineVersionArn": VERSION_ARN, "stateMachineAliasArn": ALIAS_ARN}
    return {key: getattr(execution, attr) for key, attr in fields.items() if getattr(execution, attr, None)}


def list_item(execution: Any) -> dict[str, Any]:
    item = {
        "executionArn": execution.execution_arn,
        "name": execution.name,
        "startDate": execution.start_date,
        "stateMachineArn": unqualified_arn(execution.state_machine_arn),
        "status": execution.status,
    }
    if execution.status in ENDED:
        item["stopDate"] = execution.stop_date
    return item | release_fields(execution)


def serve_versions_and_aliases() -> None:
    """Replace moto's StartExecution, ListExecutions and DescribeExecution as described above."""
    from moto.core.responses import ActionResult  # noqa: PLC0415
    from moto.stepfunctions.parser.backend.execution import Execution  # noqa: PLC0415
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend  # noqa: PLC0415
    from moto.stepfunctions.responses import StepFunctionResponse  # noqa: PLC0415
    from moto.stepfunctions.utils import PAGINATION_MODEL  # noqa: PLC0415 - only the server imports moto
    from moto.utilities.paginator import paginate  # noqa: PLC0415

    start_unqualified = StepFunctionsParserBackend.start_execution
    describe = StepFunctionResponse.describe_execution

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: Any = None,
        execution_input: Any = None,
        trace_header: Any = None,
    ) -> Any:
        qualifier = qualifier_of(state_machine_arn)
        if not qualifier:
            return start_unqualified(self, state_machine_arn, name, execution_input, trace_header)
        machine = self.describe_state_machine(unqualified_arn(state_machine_arn))
        alias = None if qualifier.isdigit() else self.describe_state_machine_alias(state_machine_arn)
        version = self.describe_state_machine(routed_version(alias) if alias else state_machine_arn)
        name = name or str(uuid.uuid4())
        input_data = execution_input or "{}"
        existing = machine._handle_name_input_idempotency(name, input_data)
        if existing is not None:
            return existing
        machine._validate_execution_input(input_data)
        execution = Execution(
            name=name,
            sm_type=version.sm_type,
            role_arn=version.roleArn,
            exec_arn=execution_arn_for(machine.arn, name),
            account_id=self.account_id,
            region_name=self.region_name,
            state_machine=version,  # the published definition, which never changes
            start_date=datetime.datetime.now(tz=datetime.UTC),
            cloud_watch_logging_session=None,
            input_data=input_data,
            trace_header=trace_header,
            activity_store={},
        )
        execution.state_machine_arn = machine.arn
        setattr(execution, VERSION_ARN, version.arn)
        setattr(execution, ALIAS_ARN, alias.arn if alias else None)
        machine.executions.append(execution)
        execution.start()
        return execution

    @paginate(pagination_model=PAGINATION_MODEL)
    def list_executions(self: Any, state_machine_arn: str, status_filter: str | None = None) -> list[Any]:
        machine = self.describe_state_machine(unqualified_arn(state_machine_arn))
        if qualifier_of(state_machine_arn) and not qualifier_of(state_machine_arn).isdigit():
            self.describe_state_machine_alias(state_machine_arn)  # an unknown alias is an error
        executions = [
            execution
            for execution in machine.executions
            if associated_with(execution, state_machine_arn)
            and (status_filter is None or execution.status == status_filter)
        ]
        return sorted(executions, key=lambda execution: execution.start_date, reverse=True)

    def list_executions_response(self: Any) -> Any:
        executions, next_token = self.stepfunction_backend.list_executions(
            self._get_param("stateMachineArn"),
            status_filter=self._get_param("statusFilter"),
            max_results=self._get_int_param("maxResults"),
            next_token=self._get_param("nextToken"),
        )
        return ActionResult({"executions": [list_item(e) for e in executions], "nextToken": next_token})

    def describe_execution(self: Any) -> Any:
        answer = describe(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        cast("dict[str, Any]", answer.result).update(release_fields(execution))
        return answer

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]
    StepFunctionsParserBackend.list_executions = list_executions  # type: ignore[method-assign]
    StepFunctionResponse.list_executions = list_executions_response  # type: ignore[method-assign]
    StepFunctionResponse.describe_execution = describe_execution  # type: ignore[method-assign]
