"""A function run on a rate by an EventBridge rule, with the input it is given each time."""

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


def run_every(
    scope: Construct,
    construct_id: str,
    *,
    function: lambda_.IFunction,
    every: Duration,
    payload: dict[str, Any],
    description: str,
    max_event_age: Duration | None = None,
    retry_attempts: int | None = None,
) -> events.Rule:
    """The rule; EventBridge retries a run it could not deliver `retry_attempts` times within
    `max_event_age` (by default: 185 times within a day)."""
    rule = events.Rule(scope, construct_id, description=description, schedule=events.Schedule.rate(every))
    rule.add_target(
        targets.LambdaFunction(
            function,
            event=events.RuleTargetInput.from_object(payload),
            max_event_age=max_event_age,
            retry_attempts=retry_attempts,
        )
    )
    return rule
