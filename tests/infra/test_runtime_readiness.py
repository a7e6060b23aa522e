"""What was wrong at run time in a real account, asserted on the synthesized templates of dev
and prod."""

import json
from typing import Any

from cdk import constants as c
from cdk.capabilities.edge import OTEL_COLLECTOR_IMAGE
from grpc_edge.server import CONNECTION_OPTIONS
from order_saga.functions import FUNCTIONS
from order_saga.manifest import STATE_MACHINE_STEPS
from tests.support.synth import Synthesized, dump, refs

NLB_IDLE_TIMEOUT_SECONDS = 350  # fixed for TCP flows through a Network Load Balancer


def alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    prefix = f"{c.PROJECT}-{synth.env}-"
    return {
        a["Properties"]["AlarmName"].removeprefix(prefix): a["Properties"]
        for a in synth.resources("Observability", "AWS::CloudWatch::Alarm").values()
    }


def metric_names(alarm: dict[str, Any]) -> set[str]:
    if "MetricName" in alarm:
        return {alarm["MetricName"]}
    return {q["MetricStat"]["Metric"]["MetricName"] for q in alarm["Metrics"] if "MetricStat" in q}


def test_the_alarm_topic_uses_a_key_cloudwatch_may_use(synthesized: Synthesized) -> None:
    (topic,) = synthesized.resources("Observability", "AWS::SNS::Topic").values()
    (key_id,) = refs(topic["Properties"]["KmsMasterKeyId"])
    key = synthesized.template("Observability")["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (cloudwatch,) = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    for alarm in alarms(synthesized).values():
        assert refs(alarm["AlarmActions"]) == {
            next(iter(synthesized.resources("Observability", "AWS::SNS::Topic")))
        }


def test_alarms_page_on_what_needs_a_person_never_on_business_outcomes(synthesized: Synthesized) -> None:
    found = alarms(synthesized)
    # Declined cards and out-of-stock orders end in Fail states: ExecutionsFailed is no alarm
    assert not any("ExecutionsFailed" in metric_names(a) for a in found.values())
    for name in (
        "NeedsAttention",
        "CompensationDlqNotEmpty",
        "NotificationDlqNotEmpty",
        "WatchdogDlqNotEmpty",
        "SagaExecutionsTimedOut",
        "SagaExecutionsAborted",
        "CancellationExecutionsTimedOut",
        "CancellationExecutionsAborted",
        "EdgeServerErrors",
    ):
        assert name in found, name
    assert metric_names(found["SagaExecutionsAborted"]) == {"ExecutionsAborted"}
    assert metric_names(found["NeedsAttention"]) == {"Invocations"}
    assert "MarkNeedsAttention" in dump(found["NeedsAttention"]["Dimensions"])


def test_the_on_call_alarms_cover_every_function_and_the_platform(synthesized: Synthesized) -> None:
    found = alarms(synthesized)
    # Every function of FUNCTIONS (a new one included) has an error-rate and a throttle alarm
    for spec in FUNCTIONS:
        errors, throttles = found[f"{spec.name}Errors"], found[f"{spec.name}Throttles"]
        assert metric_names(errors) == {"Errors", "Invocations"}
        assert errors["EvaluationPeriods"] == 3
        assert metric_names(throttles) == {"Throttles"}
    expected = {
        "DatabaseConnections": "DatabaseConnections",
        "ProxyAuthFailures": "ClientConnectionsSetupFailedAuth",
        "RedisMemory": "DatabaseMemoryUsagePercentage",
        "EdgeRunningTasks": "RunningTaskCount",
        "EdgeUnhealthyTargets": "UnHealthyHostCount",
        "OldestNotification": "ApproximateAgeOfOldestMessage",
    }
    for name, metric in expected.items():
        assert metric_names(found[name]) == {metric}, name
    config = c.environment_config(synthesized.env)
    assert found["EdgeRunningTasks"]["Threshold"] == config.edge_min_tasks
    assert found["EdgeRunningTasks"]["ComparisonOperator"] == "LessThanThreshold"
    # The proxy alarm watches this environment's proxy, which the Data stack writes for it
    (dimension,) = found["ProxyAuthFailures"]["Dimensions"]
    (proxy,) = synthesized.resources("Data", "AWS::RDS::DBProxy")
    assert synthesized.source("Observability", dimension["Value"]) == (
        f"{c.PROJECT}-{synthesized.env}-Data",
        {"Ref": proxy},
    )


def test_two_database_logins_each_rotated_master_only_for_migrations(synthesized: Synthesized) -> None:
    secrets = synthesized.resources("Data", "AWS::SecretsManager::Secret")
    app = [k for k in secrets if k.startswith("DatabaseAppUserSecret")]
    assert len(app) == 1
    template = dump(secrets[app[0]])
    assert f'\\"username\\":\\"{c.DATABASE_APP_USER}\\"' in template
    assert "masterarn" in template  # the multi-user rotation changes it with the master's login
    # the master's schedule beside it, the application user's after the migration (test_fresh_account)
    assert len(synthesized.resources("Data", "AWS::SecretsManager::RotationSchedule")) == 1
    assert len(synthesized.resources("Saga", "AWS::SecretsManager::RotationSchedule")) == 1
    (proxy,) = synthesized.resources("Data", "AWS::RDS::DBProxy").values()
    assert len(proxy["Properties"]["Auth"]) == 2
    # MySQL 8.4's users log in with caching_sha2_password, and so do the proxy's clients
    assert {a["ClientPasswordAuthType"] for a in proxy["Properties"]["Auth"]} == {
        "MYSQL_CACHING_SHA2_PASSWORD"
    }
    # The migration function alone logs in as the master user, and creates the application user
    functions = synthesized.resources("Saga", "AWS::Lambda::Function").values()
    for function in functions:
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if "MYSQL_SECRET_ARN" not in variables:
            continue
        migration = "MYSQL_APP_SECRET_ARN" in variables
        assert ("DatabaseMasterSecret" in dump(variables["MYSQL_SECRET_ARN"])) is migration
        if migration:
            assert "DatabaseAppUserSecret" in dump(variables["MYSQL_APP_SECRET_ARN"])


def test_mysql_is_84_by_major_version_with_the_slow_query_log(synthesized: Synthesized) -> None:
    (db,) = synthesized.resources("Data", "AWS::RDS::DBInstance").values()
    assert db["Properties"]["EngineVersion"] == "8.4"  # no minor: RDS upgrades it, the template never lags
    assert db["Properties"]["AutoMinorVersionUpgrade"] is True
    assert "slowquery" in db["Properties"]["EnableCloudwatchLogsExports"]
    (group,) = synthesized.resources("Data", "AWS::RDS::DBParameterGroup").values()
    assert group["Properties"]["Family"] == "mysql8.4"
    params = group["Properties"]["Parameters"]
    assert (params["slow_query_log"], params["log_output"]) == ("1", "FILE")


def worst_case_seconds(definition: dict[str, Any]) -> float:
    """An upper bound of an execution's run time: every task state timing out on every attempt
    its retriers allow, with their longest waits; a Parallel state as long as its longest branch."""
    total = 0.0
    for state in definition["States"].values():
        total += max((worst_case_seconds(branch) for branch in state.get("Branches", [])), default=0.0)
        attempts = 1 + sum(r.get("MaxAttempts", 3) for r in state.get("Retry", []))
        waits = sum(
            min(r.get("IntervalSeconds", 1) * r.get("BackoffRate", 2.0) ** k, r.get("MaxDelaySeconds", 1e9))
            for r in state.get("Retry", [])
            for k in range(r.get("MaxAttempts", 3))
        )
        total += attempts * state.get("TimeoutSeconds", 0) + waits + state.get("Seconds", 0)
    return total


def test_both_state_machines_time_out_after_their_longest_legitimate_run(synthesized: Synthesized) -> None:
    for path in c.STATE_MACHINES.values():
        definition = json.loads(path.read_text())
        # A top-level timeout, so a stuck execution ends TIMED_OUT (and pages) instead of hanging
        assert definition["TimeoutSeconds"] >= worst_case_seconds(definition), path.name
    assert set(alarms(synthesized)) >= {"SagaExecutionsTimedOut", "CancellationExecutionsTimedOut"}


def test_edge_connections_are_kept_alive_and_recycled_within_the_nlb_idle_timeout(
    synthesized: Synthesized,
) -> None:
    options = dict(CONNECTION_OPTIONS)
    assert options["grpc.keepalive_time_ms"] < NLB_IDLE_TIMEOUT_SECONDS * 1000
    assert options["grpc.max_connection_age_ms"] < NLB_IDLE_TIMEOUT_SECONDS * 1000
    assert options["grpc.keepalive_permit_without_calls"] == 1
    (listener,) = synthesized.resources("Edge", "AWS::ElasticLoadBalancingV2::Listener").values()
    # A TCP listener left at its default idle timeout: 350 s
    assert listener["Properties"]["Protocol"] == "TCP"
    assert "tcp.idle_timeout.seconds" not in json.dumps(listener["Properties"].get("ListenerAttributes", []))


def collector(synth: Synthesized) -> dict[str, Any]:
    (task,) = synth.resources("Edge", "AWS::ECS::TaskDefinition").values()
    (container,) = [d for d in task["Properties"]["ContainerDefinitions"] if d["Name"] == "Collector"]
    return container  # type: ignore[no-any-return]


def test_the_collector_is_pinned_and_writes_to_a_log_group_with_retention(synthesized: Synthesized) -> None:
    container = collector(synthesized)
    assert container["Image"] == OTEL_COLLECTOR_IMAGE
    assert container["Image"].rsplit(":", 1)[1] == "v0.49.0"
    groups = {
        k: v
        for k, v in synthesized.resources("Edge", "AWS::Logs::LogGroup").items()
        if k.startswith("EdgeMetricsLogs")
    }
    ((group_id, group),) = groups.items()
    assert group["Properties"]["RetentionInDays"] == {"dev": 7, "prod": 90}[synthesized.env]
    assert group_id in refs(container["Environment"])


def test_no_access_log_bucket_for_a_tcp_listener(synthesized: Synthesized) -> None:
    assert not synthesized.resources("Edge", "AWS::S3::Bucket")
    (nlb,) = synthesized.resources("Edge", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    attributes = {a["Key"]: a["Value"] for a in nlb["Properties"].get("LoadBalancerAttributes", [])}
    assert attributes.get("access_logs.s3.enabled", "false") == "false"


def test_prod_keeps_its_data_and_backs_the_database_up(synthesized: Synthesized) -> None:
    prod = synthesized.env == "prod"
    kept = "Retain" if prod else "Delete"
    queues = synthesized.resources("Saga", "AWS::SQS::Queue")
    (dlq,) = [q for k, q in queues.items() if k.startswith("QueuesCompensationDlq")]
    assert dlq["DeletionPolicy"] == kept
    for stack in ("Data", "Saga"):
        for secret in synthesized.resources(stack, "AWS::SecretsManager::Secret").values():
            assert secret["DeletionPolicy"] == kept
    plans = synthesized.resources("Data", "AWS::Backup::BackupPlan")
    assert len(plans) == (1 if prod else 0)
    if prod:
        (selection,) = synthesized.resources("Data", "AWS::Backup::BackupSelection").values()
        assert "DatabaseInstance" in dump(selection["Properties"]["BackupSelection"]["Resources"])


def test_state_machines_are_traced_under_a_sampling_rule_of_their_own(synthesized: Synthesized) -> None:
    (rule,) = synthesized.resources("Observability", "AWS::XRay::SamplingRule").values()
    props = rule["Properties"]["SamplingRule"]
    assert props["ServiceType"] == "AWS::StepFunctions::StateMachine"
    assert props["ServiceName"] == f"{c.PROJECT}-{synthesized.env}-*"
    assert props["FixedRate"] == c.environment_config(synthesized.env).trace_sampling_rate


def test_only_the_state_machines_steps_reserve_concurrency_and_only_in_prod(synthesized: Synthesized) -> None:
    config = c.environment_config(synthesized.env)
    reserved = {
        f["Properties"]["FunctionName"]: f["Properties"].get("ReservedConcurrentExecutions")
        for f in synthesized.resources("Saga", "AWS::Lambda::Function").values()
        if isinstance(f["Properties"].get("FunctionName"), str)
    }
    expected = {
        spec.deployed_name(synthesized.env): (
            config.step_reserved_concurrency if spec.name in STATE_MACHINE_STEPS else None
        )
        for spec in FUNCTIONS
    }
    assert {name: reserved[name] for name in expected} == expected
    # dev reserves nothing; prod's total is what docs/deploy.md gives and the preflight checks
    total = sum(value or 0 for value in reserved.values())
    assert total == config.reserved_concurrency_total == {"dev": 0, "prod": 400}[synthesized.env]
    (mapping,) = synthesized.resources("Saga", "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": c.NOTIFICATION_SENDERS}
