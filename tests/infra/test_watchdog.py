"""The saga watchdog in AWS: an EventBridge rule per closed-the-wrong-way execution, least privilege,
its own DLQ and alarms (cdk-nag runs over it with the rest of the app)."""

import json
from typing import Any

from cdk import constants as c
from order_saga.functions import function
from order_saga.manifest import ORDER_SAGA
from tests.support.synth import Synthesized, dump, lambda_function, refs, role_policy, state_machine


def only(resources: dict[str, dict[str, Any]], marker: str) -> tuple[str, dict[str, Any]]:
    [found] = [(k, v["Properties"]) for k, v in resources.items() if marker in k]
    return found


def test_every_failed_timed_out_or_aborted_execution_of_both_machines_reaches_the_watchdog(
    synthesized: Synthesized,
) -> None:
    watchdog_id, _ = lambda_function(synthesized, function("SagaWatchdog"))
    _, rule = only(synthesized.resources("Saga", "AWS::Events::Rule"), "WatchdogExecutionClosed")
    machines = {state_machine(synthesized, name)[0] for name in c.STATE_MACHINES}
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert pattern["detail"]["status"] == ["FAILED", "TIMED_OUT", "ABORTED"]
    assert refs(pattern["detail"]["stateMachineArn"]) == machines
    [target] = rule["Targets"]
    assert refs(target["Arn"]) == {watchdog_id}
    # an event it cannot deliver waits on the watchdog's own DLQ
    dlq_id, _ = only(synthesized.resources("Saga", "AWS::SQS::Queue"), "WatchdogDlq")
    assert refs(target["DeadLetterConfig"]) == {dlq_id}
    # and so does one the function failed on, after Lambda's retries
    _, invoke_config = only(synthesized.resources("Saga", "AWS::Lambda::EventInvokeConfig"), "Watchdog")
    assert refs(invoke_config["DestinationConfig"]["OnFailure"]) == {dlq_id}


def test_the_watchdog_may_read_executions_of_the_two_machines_and_start_only_the_saga(
    synthesized: Synthesized,
) -> None:
    _, props = lambda_function(synthesized, function("SagaWatchdog"))
    statements = role_policy(synthesized, props["Role"]["Fn::GetAtt"][0])
    states = [s for s in statements if "states:" in dump(s["Action"])]
    assert [s["Action"] for s in states] == [
        ["states:DescribeExecution", "states:GetExecutionHistory"],
        "states:StartExecution",
    ]
    machines = {state_machine(synthesized, name)[0] for name in c.STATE_MACHINES}
    assert refs(states[0]["Resource"]) - {"AWS::Partition", "AWS::AccountId"} == machines
    assert ":execution:" in dump(states[0]["Resource"])
    # and may start the order saga (one that never started), not the cancellation
    assert refs(states[1]["Resource"]) == {state_machine(synthesized, ORDER_SAGA.name)[0]}
    variables = props["Environment"]["Variables"]
    assert {"ORDER_CANCELLATION_STATE_MACHINE_ARN", "COMPENSATION_DLQ_URL"} <= set(variables)


def test_the_watchdogs_dlq_pages_through_the_alarm_topic(synthesized: Synthesized) -> None:
    # The watchdog's own stack raises no alarm of its own (no action would reach a person) ...
    assert synthesized.resources("Saga", "AWS::CloudWatch::Alarm") == {}
    # ... the monitoring stack alarms on the depth of the watchdog's DLQ, with the topic's action
    [(_, alarm)] = [
        (name, props["Properties"])
        for name, props in synthesized.resources("Observability", "AWS::CloudWatch::Alarm").items()
        if props["Properties"]["AlarmName"] == f"{c.PROJECT}-{synthesized.env}-WatchdogDlqNotEmpty"
    ]
    [topic] = synthesized.resources("Observability", "AWS::SNS::Topic")
    assert refs(alarm["AlarmActions"]) == {topic}
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert "WatchdogDlq" in dump(alarm["Dimensions"])


def test_a_schedule_runs_the_watchdogs_sweep_for_what_no_event_reports(synthesized: Synthesized) -> None:
    watchdog_id, _ = lambda_function(synthesized, function("SagaWatchdog"))
    _, rule = only(synthesized.resources("Saga", "AWS::Events::Rule"), "WatchdogSweep")
    assert rule["ScheduleExpression"] == "rate(15 minutes)"
    [target] = rule["Targets"]
    assert refs(target["Arn"]) == {watchdog_id}
    assert json.loads(target["Input"]) == {"sweep_older_than_seconds": 600}
