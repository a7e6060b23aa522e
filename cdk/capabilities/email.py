"""SES: the sender identity of the notification e-mails."""

from aws_cdk import aws_ses as ses
from constructs import Construct


class Email(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, sender: str) -> None:
        super().__init__(scope, construct_id)
        self.sender = sender
        self.identity = ses.EmailIdentity(self, "Sender", identity=ses.Identity.email(sender))
