"""SES: the sender identity of the notification e-mails.

dev creates an identity for the sender address (SES mails it a verification link). prod sends from
a domain verified beforehand (DKIM, out of the SES sandbox: a prerequisite, docs/deploy.md), so
the stack only refers to it: creating it would fail on the identity that already exists.
"""

from aws_cdk import aws_ses as ses
from constructs import Construct

from cdk import constants as c


class Email(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, sender: str, config: c.EnvironmentConfig
    ) -> None:
        super().__init__(scope, construct_id)
        self.sender = sender
        self.identity: ses.IEmailIdentity
        if config.name == "dev":
            self.identity = ses.EmailIdentity(self, "Sender", identity=ses.Identity.email(sender))
        else:
            domain = c.sender_domain(sender)
            self.identity = ses.EmailIdentity.from_email_identity_name(self, "Sender", domain)
