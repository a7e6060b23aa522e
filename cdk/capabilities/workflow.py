"""The state machines, deployed from the same ASL files the local stack executes.

Each file's `${...}` placeholders decide both its substitutions and its role: the role may invoke
exactly the functions the definition names and send to exactly the queues it names.

Releases: the definition calls the functions' published versions (qualified ARNs), every deploy
that changes the definition publishes a state machine version, and the alias `live` routes every
new execution to it. An execution started through the alias runs its version's definition, so its
version's functions, to the end: a deploy never swaps code under a running saga. Old versions of
both are retained (docs/decisions.md: how long, and what deletes them).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk import constants as c
from cdk.nag import acknowledge, logical_id
from order_saga.manifest import RELEASE_ALIAS, SUBSTITUTION, resource_name


class UnknownSubstitution(ValueError):
    """A definition names a `${...}` the deployment does not provide."""


def placeholders(path: Path) -> list[str]:
    """The distinct `${Name}` placeholders of an ASL file, in order of appearance."""
    if not path.is_file():
        raise FileNotFoundError(f"the state machine definition {path} is missing")
    return list(dict.fromkeys(SUBSTITUTION.findall(path.read_text(encoding="utf-8"))))


@dataclass(frozen=True)
class WorkflowTargets:
    functions: Mapping[str, lambda_.IVersion]  # by substitution name, e.g. ProcessPaymentFunctionArn
    queues: Mapping[str, sqs.IQueue]  # by substitution name, e.g. NotificationQueueUrl


def log_group_name(machine: str) -> str:
    """Under /aws/vendedlogs/ (no log resource policy per group), and unique to the stack instance
    (its id's UUID): a prod group RETAINed by an earlier stack never blocks the next deployment."""
    return f"/aws/vendedlogs/states/{machine}-{c.stack_instance_id()}"


class Workflow(Construct):
    """One Standard state machine with X-Ray: logging at level ALL with execution data in dev, for
    analysts; at level ERROR without execution data in prod (orders' data are personal data)."""

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
        name = resource_name(config.name, construct_id)  # in the console: OrderSaga-<env>-<name>
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=log_group_name(name),
            retention=config.log_retention,
            removal_policy=config.kept_removal,
        )
        substitutions: dict[str, str] = {}
        functions: list[lambda_.IVersion] = []
        queues: list[sqs.IQueue] = []
        for key in placeholders(definition):
            if key in targets.functions:
                substitutions[key] = targets.functions[key].function_arn  # the version's ARN
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
        prod = config.name != "dev"
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(definition)),
            definition_substitutions=substitutions,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ERROR if prod else sfn.LogLevel.ALL,
                include_execution_data=not prod,
            ),
            tracing_enabled=True,
        )
        role = self.state_machine.role
        if functions:
            # Every version of the named functions (`:*`): an execution of an older state machine
            # version still calls the function versions it was published with, under this role.
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[f"{fn.lambda_.function_arn}:*" for fn in functions],
                )
            )
            for fn in functions:
                acknowledge(
                    role,
                    f"AwsSolutions-IAM5[Resource::<{logical_id(fn.lambda_)}.Arn>:*]",
                    "Every version (`:*`) of a function the definition names: executions of older "
                    "releases still call the versions they were published with.",
                )
        for queue in queues:
            queue.grant_send_messages(role)
        if prod:
            acknowledge(
                self.state_machine,
                "AwsSolutions-SF1",
                "prod logs ERROR events without execution data: the data carry customers' e-mail "
                "addresses, and level ALL bills every transition as log ingestion; the console's "
                "execution history keeps every step for 90 days (docs/decisions.md).",
            )
        self._release(name)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Log delivery (logs:CreateLogDelivery, ...) and X-Ray's PutTraceSegments take no resource ARN.",
        )

    def _release(self, name: str) -> None:
        """A version of the current revision (a new one whenever the revision changes: the version
        is replaced, and the old one RETAINed for the executions still running on it), and the
        alias every new execution starts through, 100% on that version."""
        machine = self.state_machine.node.default_child
        assert isinstance(machine, sfn.CfnStateMachine)
        self.version = sfn.CfnStateMachineVersion(
            self,
            "Version",
            state_machine_arn=self.state_machine.state_machine_arn,
            state_machine_revision_id=machine.attr_state_machine_revision_id,
            description=f"{name}: a release of the saga (its functions' versions)",
        )
        self.version.apply_removal_policy(RemovalPolicy.RETAIN)
        self.alias = sfn.CfnStateMachineAlias(
            self,
            "Alias",
            name=RELEASE_ALIAS,
            state_machine_arn=self.state_machine.state_machine_arn,
            description="Where new executions start: the latest release",
            routing_configuration=[
                sfn.CfnStateMachineAlias.RoutingConfigurationVersionProperty(
                    state_machine_version_arn=self.version.attr_arn, weight=100
                )
            ],
        )

    @property
    def alias_arn(self) -> str:
        """What executions start through (the settings that name this state machine carry it)."""
        return self.alias.attr_arn

    def grant_start_execution(self, grantee: iam.IGrantable) -> None:
        """StartExecution through the alias only. Step Functions authorizes a qualified ARN against
        the state machine's own ARN; the qualifier condition narrows it to the alias, so neither an
        unqualified start (the latest revision, no version) nor a version ARN is allowed."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["states:StartExecution"],
            resource_arns=[self.state_machine.state_machine_arn],
            conditions={"StringEquals": {"states:StateMachineQualifier": RELEASE_ALIAS}},
        )
