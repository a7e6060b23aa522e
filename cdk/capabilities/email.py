"""SES: the sender identity of the notification e-mails, and the grant to send from it.

dev creates an identity for the sender address (SES mails it a verification link). prod sends from
a domain verified beforehand (DKIM, out of the SES sandbox: a prerequisite, docs/deploy.md, which
the preflight checks), so the stack only refers to it: creating it would fail on the identity that
already exists.

A dev account is usually in the SES sandbox, where a send is also authorized against each
recipient's identity (the verified addresses it may mail): a grant on the sender identity alone is
refused there. dev's grant therefore covers the account's identities, held to the sender address
by `ses:FromAddress`; prod's covers its domain identity only.
"""

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ses as ses
from constructs import Construct

from cdk import constants as c
from cdk.nag import acknowledge

SEND_ACTIONS = ("ses:SendEmail", "ses:SendRawEmail")


class Email(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, sender: str, config: c.EnvironmentConfig
    ) -> None:
        super().__init__(scope, construct_id)
        self.sender = sender
        self.sandbox_recipients = config.name == "dev"
        self.identity: ses.IEmailIdentity
        if config.name == "dev":
            self.identity = ses.EmailIdentity(self, "Sender", identity=ses.Identity.email(sender))
        else:
            domain = c.sender_domain(sender)
            self.identity = ses.EmailIdentity.from_email_identity_name(self, "Sender", domain)

    def grant_send(self, role: iam.Role) -> None:
        """Let `role` send from the sender (and, in dev, to the sandbox's verified recipients)."""
        if not self.sandbox_recipients:
            self.identity.grant_send_email(role)
            return
        stack = Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(SEND_ACTIONS),
                resources=[stack.format_arn(service="ses", resource="identity", resource_name="*")],
                conditions={"StringEquals": {"ses:FromAddress": self.sender}},
            )
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:{stack.partition}:ses:{stack.region}:<AWS::AccountId>:identity/*]",
            "In the SES sandbox a send is authorized against every recipient's identity too; the "
            "statement is held to the sender address by ses:FromAddress (dev only).",
        )
