"""The state machines, deployed from the same ASL files the local stack executes.

Each file's `${...}` placeholders decide both its substitutions and its role: the role may invoke
exactly the functions the definition names and send to exactly the queues it names.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnElement, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from cdk import constants as c
from cdk.nag import acknowledge

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


class UnknownSubstitution(ValueError):
    """A definition names a `${...}` the deployment does not provide."""


def placeholders(path: Path) -> list[str]:
    """The distinct `${Name}` placeholders of an ASL file, in order of appearance."""
    if not path.is_file():
        raise FileNotFoundError(f"the state machine definition {path} is missing")
    return list(dict.fromkeys(PLACEHOLDER.findall(path.read_text(encoding="utf-8"))))


@dataclass(frozen=True)
class WorkflowTargets:
    functions: Mapping[str, lambda_.IFunction]  # by substitution name, e.g. ProcessPaymentFunctionArn
    queues: Mapping[str, sqs.IQueue]  # by substitution name, e.g. NotificationQueueUrl


class Workflow(Construct):
    """One Standard state machine: logging at level ALL (execution data included) and X-Ray."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition: Path,
        targets: WorkflowTargets,
        config: c.EnvironmentConfig,
    ) -> None:
        super().__init__(scope, construct_id)
        name = construct_id  # the state machine's name in the console: OrderSaga-<env>-<name>
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{c.PROJECT}-{config.name}-{name}",
            retention=config.log_retention,
            removal_policy=config.log_removal,
        )
        substitutions: dict[str, str] = {}
        functions: list[lambda_.IFunction] = []
        queues: list[sqs.IQueue] = []
        for key in placeholders(definition):
            if key in targets.functions:
                substitutions[key] = targets.functions[key].function_arn
                functions.append(targets.functions[key])
            elif key in targets.queues:
                substitutions[key] = targets.queues[key].queue_url
                queues.append(targets.queues[key])
            else:
                known = ", ".join(sorted([*targets.functions, *targets.queues]))
                raise UnknownSubstitution(
                    f"{definition.name} uses ${{{key}}}; the deployment provides {known}"
                )
        self.substitutions = substitutions
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{c.PROJECT}-{config.name}-{name}",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(definition)),
            definition_substitutions=substitutions,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        role = self.state_machine.role
        for fn in functions:
            fn.grant_invoke(role)
        for queue in queues:
            queue.grant_send_messages(role)
        self._acknowledge(role, functions)

    def _acknowledge(self, role: iam.IRole, functions: list[lambda_.IFunction]) -> None:
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Log delivery (logs:CreateLogDelivery, ...) and X-Ray take no resource ARNs.",
        )
        for fn in functions:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{logical_id(fn)}.Arn>:*]",
                "Invoking the versions and aliases of a function this definition names, nothing else.",
            )


def logical_id(construct: IConstruct) -> str:
    """The logical id of a construct's CloudFormation resource (how cdk-nag names it)."""
    resource = construct.node.default_child
    assert isinstance(resource, CfnElement)
    return Stack.of(construct).get_logical_id(resource)
