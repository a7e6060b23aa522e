"""CloudWatch: one dashboard for the saga and the edge, the alarms that need a person, an SNS
topic they can actually publish to, and the X-Ray sampling rule of the state machines.

The alarms page on what a person must act on (docs/decisions.md): an order flagged
NEEDS_ATTENTION, a failed compensation waiting in its DLQ, an execution that timed out or was
aborted, an order whose money disagrees with the payment gateway (or no reconciliation run to
say), a function that errs on most calls or is throttled, and the health of what the saga runs
on. A declined card or an out-of-stock order ends in a Fail state too, so failed executions are a
business figure on the dashboard, never an alarm.
"""

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_xray as xray
from constructs import Construct

from cdk import constants as c
from cdk.capabilities.reconciliation import RECONCILE_EVERY
from order_saga.functions import function
from order_saga.manifest import Step
from order_saga.reconciliation.reconcile import MONEY_VIOLATIONS, ORDERS_RECONCILED

PERIOD = Duration.minutes(5)
GT_OR_EQUAL = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LESS_THAN = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
# A function erring on at least half of its calls (and at least MIN_CALLS) for three periods in
# a row is broken: declined cards and retried blips never get there.
ERROR_RATE_PERCENT = 50
MIN_CALLS = 20
OLDEST_NOTIFICATION_SECONDS = 900
# A rotation refuses each warm client's cached login once (it reads the secret again at once), and
# no cached secret is older than SECRET_MAX_AGE (300 s): its failures fit in two 5-minute periods.
# Failures in three periods in a row are something else (docs/decisions.md).
PROXY_AUTH_FAILURE_PERIODS = 3
GIB = 1024**3
FREE_STORAGE_PERCENT = 10
# SES's account-level reputation (AWS/SES, no dimensions), alarmed at half of where SES starts a review.
BOUNCE_RATE = 0.025
COMPLAINT_RATE = 0.0005


@dataclass(frozen=True)
class Monitored:
    order_saga: sfn.IStateMachine
    order_cancellation: sfn.IStateMachine
    functions: dict[str, lambda_.IFunction]
    notification_queue: sqs.IQueue
    notification_dlq: sqs.IQueue
    compensation_dlq: sqs.IQueue
    watchdog_dlq: sqs.IQueue
    database: rds.DatabaseInstance
    proxy: rds.DatabaseProxy
    cache: elasticache.CfnReplicationGroup
    edge_service: ecs.FargateService
    edge_target_group: elbv2.NetworkTargetGroup


@dataclass(frozen=True)
class AlarmSpec:
    metric: cloudwatch.IMetric
    description: str
    threshold: float = 1
    comparison: cloudwatch.ComparisonOperator = GT_OR_EQUAL
    periods: int = 1
    missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING


def edge_errors() -> cloudwatch.MathExpression:
    """Server-side gRPC failures per period, summed over the codes that mean the edge failed."""
    metrics = {
        f"e{i}": cloudwatch.Metric(
            namespace=c.EDGE_METRICS_NAMESPACE,
            metric_name=c.EDGE_HANDLED_METRIC,
            dimensions_map={"grpc_code": code},
            statistic="Sum",
            period=PERIOD,
        )
        for i, code in enumerate(c.EDGE_ERROR_CODES)
    }
    return cloudwatch.MathExpression(
        expression=" + ".join(f"FILL({key}, 0)" for key in metrics),
        using_metrics=metrics,
        label="edge server errors",
        period=PERIOD,
    )


def ses_reputation(name: str) -> cloudwatch.Metric:
    """The account's SES reputation rate `name` (a fraction, published by SES)."""
    return cloudwatch.Metric(namespace="AWS/SES", metric_name=name, statistic="Maximum", period=PERIOD)


def reconciliation_metric(name: str, statistic: str) -> cloudwatch.Metric:
    """A metric ReconcilePayments publishes (Powertools: the project's namespace, its service)."""
    return cloudwatch.Metric(
        namespace=c.PROJECT,
        metric_name=name,
        dimensions_map={"service": function(Step.RECONCILE_PAYMENTS).service},
        statistic=statistic,
        period=RECONCILE_EVERY,
    )


def error_rate(fn: lambda_.IFunction) -> cloudwatch.MathExpression:
    """Percent of calls that erred, 0 while the function is barely called."""
    return cloudwatch.MathExpression(
        expression=f"IF(calls >= {MIN_CALLS}, 100 * errors / calls, 0)",
        using_metrics={
            "errors": fn.metric_errors(period=PERIOD, statistic="Sum"),
            "calls": fn.metric_invocations(period=PERIOD, statistic="Sum"),
        },
        period=PERIOD,
    )


def alarm_key(scope: Construct) -> kms.Key:
    """A customer-managed key CloudWatch may use: alarms cannot publish to a topic encrypted with
    the AWS-managed SNS key, whose policy nobody can change."""
    key = kms.Key(scope, "AlarmsKey", description="order-saga alarm topic", enable_key_rotation=True)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy, `*` is this key
        )
    )
    return key


class Monitoring(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, monitored: Monitored, config: c.EnvironmentConfig
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name=f"order-saga {config.name} alarms",
            master_key=alarm_key(self),
            enforce_ssl=True,
        )
        self.alarm_specs = alarm_specs(monitored, config)
        for name, spec in self.alarm_specs.items():
            alarm = cloudwatch.Alarm(
                self,
                name,
                alarm_name=f"{c.PROJECT}-{config.name}-{name}",
                alarm_description=spec.description,
                metric=spec.metric,
                threshold=spec.threshold,
                evaluation_periods=spec.periods,
                comparison_operator=spec.comparison,
                treat_missing_data=spec.missing,
            )
            alarm.add_alarm_action(actions.SnsAction(self.topic))
        xray.CfnSamplingRule(
            self,
            "Sampling",
            sampling_rule=xray.CfnSamplingRule.SamplingRuleProperty(
                rule_name=f"order-saga-{config.name}",
                priority=100,
                service_name=f"{c.PROJECT}-{config.name}-*",
                service_type="AWS::StepFunctions::StateMachine",
                host="*",
                http_method="*",
                url_path="*",
                resource_arn="*",
                reservoir_size=1,
                fixed_rate=config.trace_sampling_rate,
                version=1,
            ),
        )
        self._dashboard(monitored, config)

    def _dashboard(self, m: Monitored, config: c.EnvironmentConfig) -> None:
        saga = m.order_saga
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{c.PROJECT}-{config.name}")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Order saga executions (failed: declined, out of stock, cancelled)",
                left=[
                    saga.metric_started(period=PERIOD, statistic="Sum"),
                    saga.metric_succeeded(period=PERIOD, statistic="Sum"),
                    saga.metric_failed(period=PERIOD, statistic="Sum"),
                    saga.metric_timed_out(period=PERIOD, statistic="Sum"),
                    saga.metric_aborted(period=PERIOD, statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Execution time (p50, p99)",
                left=[saga.metric_time(statistic="p50"), saga.metric_time(statistic="p99")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Step errors",
                left=[fn.metric_errors(period=PERIOD, label=name) for name, fn in m.functions.items()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Step duration p99",
                left=[fn.metric_duration(statistic="p99", label=name) for name, fn in m.functions.items()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Needs a person",
                left=[
                    self.alarm_specs["NeedsAttention"].metric,
                    self.alarm_specs["CompensationDlqNotEmpty"].metric,
                    self.alarm_specs["NotificationDlqNotEmpty"].metric,
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(title="Edge server errors", left=[edge_errors()], width=12),
        )


def alarm_specs(m: Monitored, config: c.EnvironmentConfig) -> dict[str, AlarmSpec]:
    """Every alarm by name: the saga's outcomes that need a person, then what the saga runs on."""
    specs = {
        "NeedsAttention": AlarmSpec(
            m.functions["MarkNeedsAttention"].metric_invocations(period=PERIOD, statistic="Sum"),
            "A compensation failed: an order is NEEDS_ATTENTION (runbook: docs/deploy.md)",
        ),
        "CompensationDlqNotEmpty": AlarmSpec(
            m.compensation_dlq.metric_approximate_number_of_messages_visible(period=PERIOD),
            "Failed compensations (CompensationFailed) wait to be re-driven",
        ),
        "NotificationDlqNotEmpty": AlarmSpec(
            m.notification_dlq.metric_approximate_number_of_messages_visible(period=PERIOD),
            "Notifications could not be sent",
        ),
        "WatchdogDlqNotEmpty": AlarmSpec(
            m.watchdog_dlq.metric_approximate_number_of_messages_visible(period=PERIOD),
            "The saga watchdog could not handle an execution event: an order may be left unsettled",
        ),
        "OldestNotification": AlarmSpec(
            m.notification_queue.metric_approximate_age_of_oldest_message(period=PERIOD),
            "Notifications wait longer than 15 minutes (SES throttling or a failing sender)",
            threshold=OLDEST_NOTIFICATION_SECONDS,
        ),
        "MoneyViolations": AlarmSpec(
            reconciliation_metric(MONEY_VIOLATIONS, "Maximum"),
            "ReconcilePayments found orders whose money disagrees with the payment gateway "
            "(runbook: docs/deploy.md, Money reconciliation)",
        ),
        # Its error-rate alarm needs more calls than an hourly schedule makes.
        "ReconciliationNotRun": AlarmSpec(
            reconciliation_metric(ORDERS_RECONCILED, "SampleCount"),
            "ReconcilePayments has not finished a run for three hours: money goes unchecked",
            comparison=LESS_THAN,
            periods=3,
            missing=cloudwatch.TreatMissingData.BREACHING,
        ),
        "EmailBounceRate": AlarmSpec(
            ses_reputation("Reputation.BounceRate"),
            f"SES bounce rate at {BOUNCE_RATE:.1%}: SES reviews the account at 5% and may pause "
            "sending at 10%",
            threshold=BOUNCE_RATE,
        ),
        "EmailComplaintRate": AlarmSpec(
            ses_reputation("Reputation.ComplaintRate"),
            f"SES complaint rate at {COMPLAINT_RATE:.2%}: SES reviews the account at 0.1% and may pause "
            "sending at 0.5%",
            threshold=COMPLAINT_RATE,
        ),
        "EdgeServerErrors": AlarmSpec(
            edge_errors(), "The edge answered INTERNAL/UNKNOWN/UNAVAILABLE/DEADLINE_EXCEEDED"
        ),
    }
    for label, machine in (("Saga", m.order_saga), ("Cancellation", m.order_cancellation)):
        specs[f"{label}ExecutionsTimedOut"] = AlarmSpec(
            machine.metric_timed_out(period=PERIOD, statistic="Sum"),
            f"An {label.lower()} execution hit the state machine's TimeoutSeconds",
        )
        specs[f"{label}ExecutionsAborted"] = AlarmSpec(
            machine.metric_aborted(period=PERIOD, statistic="Sum"),
            f"An {label.lower()} execution was stopped (StopExecution) before it ended",
        )
    for name, fn in m.functions.items():
        specs[f"{name}Errors"] = AlarmSpec(
            error_rate(fn),
            f"{name} fails on {ERROR_RATE_PERCENT}%+ of its calls for 15 minutes",
            threshold=ERROR_RATE_PERCENT,
            periods=3,
        )
        specs[f"{name}Throttles"] = AlarmSpec(
            fn.metric_throttles(period=PERIOD, statistic="Sum"),
            f"{name} was throttled (its reserved concurrency or the account's limit)",
        )
    specs |= _platform_alarms(m, config)
    return specs


def _platform_alarms(m: Monitored, config: c.EnvironmentConfig) -> dict[str, AlarmSpec]:
    """The database, its proxy, Redis, the edge's tasks and the load balancer's targets."""
    connections_limit = int(config.db_max_connections * 0.8)
    return {
        "DatabaseConnections": AlarmSpec(
            m.database.metric_database_connections(period=PERIOD, statistic="Maximum"),
            f"MySQL holds 80% of its {config.db_max_connections} connections",
            threshold=connections_limit,
        ),
        "ProxyAuthFailures": AlarmSpec(
            cloudwatch.Metric(
                namespace="AWS/RDS",
                metric_name="ClientConnectionsSetupFailedAuth",
                dimensions_map={"ProxyName": m.proxy.db_proxy_name},
                statistic="Sum",
                period=PERIOD,
            ),
            f"Clients fail to log in through RDS Proxy for {PROXY_AUTH_FAILURE_PERIODS * 5} minutes in a row "
            "(a rotation's own failures end within one secret max-age: runbook docs/deploy.md, Passwords)",
            periods=PROXY_AUTH_FAILURE_PERIODS,
        ),
        "DatabaseFreeStorage": AlarmSpec(
            m.database.metric_free_storage_space(period=PERIOD, statistic="Minimum"),
            f"MySQL has less than {FREE_STORAGE_PERCENT}% of its {config.db_allocated_storage_gb} GB free "
            f"(storage autoscaling grows it up to {config.db_max_allocated_storage_gb} GB; at the ceiling "
            "it needs a person)",
            threshold=config.db_allocated_storage_gb * GIB * FREE_STORAGE_PERCENT / 100,
            comparison=LESS_THAN,
        ),
        "RedisMemory": AlarmSpec(
            cloudwatch.Metric(
                namespace="AWS/ElastiCache",
                metric_name="DatabaseMemoryUsagePercentage",
                # The primary node of the replication group: <group id>-001.
                dimensions_map={"CacheClusterId": f"{m.cache.ref}-001"},
                statistic="Maximum",
                period=PERIOD,
            ),
            "Redis uses 80% of its memory",
            threshold=80,
        ),
        "EdgeRunningTasks": AlarmSpec(
            cloudwatch.Metric(
                namespace="ECS/ContainerInsights",
                metric_name="RunningTaskCount",
                dimensions_map={
                    "ClusterName": m.edge_service.cluster.cluster_name,
                    "ServiceName": m.edge_service.service_name,
                },
                statistic="Minimum",
                period=PERIOD,
            ),
            f"Fewer edge tasks run than the minimum of {config.edge_min_tasks}",
            threshold=config.edge_min_tasks,
            comparison=LESS_THAN,
        ),
        "EdgeUnhealthyTargets": AlarmSpec(
            m.edge_target_group.metrics.un_healthy_host_count(period=PERIOD, statistic="Maximum"),
            "The load balancer sees an unhealthy edge task",
        ),
    }
