"""ReconcilePayments in AWS: an hourly schedule over the last 24 hours, a role that reads the
database's and the gateway's secrets and nothing more, and alarms on what it finds (cdk-nag runs
over it with the rest of the app)."""

import json
from typing import Any

from cdk import constants as c
from order_saga.functions import function
from tests.support.synth import Synthesized, dump, lambda_function, refs, role_policy

SPEC = function("ReconcilePayments")
# What the role may do: read its two secrets, write its logs, send its traces.
ALLOWED_ACTIONS = {
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}


def alarm(synth: Synthesized, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        resource["Properties"]
        for resource in synth.resources("Observability", "AWS::CloudWatch::Alarm").values()
        if resource["Properties"]["AlarmName"] == f"{c.PROJECT}-{synth.env}-{name}"
    ]
    assert len(found) == 1, name
    return found[0]


def test_an_hourly_schedule_reconciles_the_last_24_hours(synthesized: Synthesized) -> None:
    function_id, _ = lambda_function(synthesized, SPEC)
    [rule] = [
        resource["Properties"]
        for name, resource in synthesized.resources("Saga", "AWS::Events::Rule").items()
        if name.startswith("ReconciliationSchedule")
    ]
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    [target] = rule["Targets"]
    assert refs(target["Arn"]) == {function_id}
    assert json.loads(target["Input"]) == {"window_seconds": 86400}
    # a run not delivered within the hour gives way to the next one
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2}


def test_the_reconciliation_reads_the_database_and_gateway_secrets_and_nothing_more(
    synthesized: Synthesized,
) -> None:
    _, props = lambda_function(synthesized, SPEC)
    statements = role_policy(synthesized, props["Role"]["Fn::GetAtt"][0])
    actions = {
        action
        for s in statements
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions <= ALLOWED_ACTIONS, actions - ALLOWED_ACTIONS
    secrets = refs([s["Resource"] for s in statements if "secretsmanager:" in dump(s["Action"])])
    assert sorted("DatabaseAppUserSecret" in name for name in secrets) == [False, True], secrets
    assert sorted("PaymentGatewaySecret" in name for name in secrets) == [False, True], secrets
    assert "CacheAuthToken" not in dump(statements)
    variables = props["Environment"]["Variables"]
    assert {"MYSQL_SECRET_ARN", "PAYMENT_GATEWAY_SECRET_ARN", "PAYMENT_GATEWAY_URL"} <= set(variables)
    assert "REDIS_URL" not in variables


def test_any_money_violation_pages_through_the_alarm_topic(synthesized: Synthesized) -> None:
    found = alarm(synthesized, "MoneyViolations")
    _, props = lambda_function(synthesized, SPEC)
    variables = props["Environment"]["Variables"]
    # The metric the function publishes: Powertools' namespace and service dimension, as deployed
    assert (found["Namespace"], found["MetricName"]) == (
        variables["POWERTOOLS_METRICS_NAMESPACE"],
        "MoneyViolations",
    )
    assert found["Dimensions"] == [{"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]}]
    assert (found["Threshold"], found["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert found["Period"] == 3600
    [topic] = synthesized.resources("Observability", "AWS::SNS::Topic")
    assert refs(found["AlarmActions"]) == {topic}


def test_a_reconciliation_that_stops_running_pages_too(synthesized: Synthesized) -> None:
    found = alarm(synthesized, "ReconciliationNotRun")
    assert (found["MetricName"], found["Statistic"]) == ("OrdersReconciled", "SampleCount")
    assert (found["ComparisonOperator"], found["Threshold"]) == ("LessThanThreshold", 1)
    assert (found["EvaluationPeriods"], found["TreatMissingData"]) == (3, "breaching")
    [topic] = synthesized.resources("Observability", "AWS::SNS::Topic")
    assert refs(found["AlarmActions"]) == {topic}
