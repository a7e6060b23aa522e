"""cdk-nag acknowledgements: every one names the rule and says why it does not apply."""

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge `rule_id` (e.g. `AwsSolutions-IAM5[Resource::*]`) on `scope` and its children."""
    if not reason.strip():
        raise ValueError(f"an acknowledgement of {rule_id} needs a reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
