"""cdk-nag acknowledgements: every one names the rule and says why it does not apply."""

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from aws_cdk import aws_ecs as ecs
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge `rule_id` (e.g. `AwsSolutions-IAM5[Resource::*]`) on `scope` and its children."""
    if not reason.strip():
        raise ValueError(f"an acknowledgement of {rule_id} needs a reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def logical_id(construct: IConstruct) -> str:
    """The logical id of a construct's CloudFormation resource (as a finding's `<Id.Arn>` names it)."""
    resource = construct.node.default_child
    assert isinstance(resource, CfnElement)
    return Stack.of(construct).get_logical_id(resource)


def acknowledge_task(task: ecs.TaskDefinition, plain_settings: str) -> None:
    """What every task definition of ours answers: ECR's login call, and its plain settings."""
    acknowledge(
        task.obtain_execution_role(),
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken takes no resource ARN; pulls are scoped to the asset repository.",
    )
    acknowledge(
        task,
        "AwsSolutions-ECS2",
        f"Only non-secret settings ({plain_settings}) are plain environment variables; credentials "
        "come from Secrets Manager.",
    )
