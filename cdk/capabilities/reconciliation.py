"""The scheduled money reconciliation: every hour ReconcilePayments checks the orders created in the
last 24 hours against the payment gateway's ledger (docs/decisions.md says why hourly over a day).

The function is built from FUNCTIONS like every step, with its database and gateway secrets and
nothing else; the monitoring stack pages on its MoneyViolations metric and on a missing run.
"""

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk.capabilities.schedule import run_every

RECONCILE_EVERY = Duration.hours(1)
RECONCILE_WINDOW = Duration.hours(24)


class Reconciliation(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        # A run not delivered within the hour is dropped: the next run covers the same orders, and
        # runs missing for three hours page (ReconciliationNotRun).
        self.schedule = run_every(
            self,
            "Schedule",
            function=function,
            every=RECONCILE_EVERY,
            payload={"window_seconds": RECONCILE_WINDOW.to_seconds()},
            description="ReconcilePayments over the orders created in the last 24 hours",
            max_event_age=RECONCILE_EVERY,
            retry_attempts=2,
        )
