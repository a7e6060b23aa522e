"""CloudWatch: one dashboard for the saga and the edge, and the alarms that page an operator
(failed executions, DLQ depth, compensation failures, edge server errors) through SNS."""

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk import constants as c

PERIOD = Duration.minutes(5)


@dataclass(frozen=True)
class Monitored:
    order_saga: sfn.IStateMachine
    order_cancellation: sfn.IStateMachine
    functions: dict[str, lambda_.IFunction]
    notification_dlq: sqs.IQueue
    compensation_dlq: sqs.IQueue


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


class Monitoring(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, monitored: Monitored, config: c.EnvironmentConfig
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name=f"order-saga {config.name} alarms",
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        m = monitored
        saga_failed = m.order_saga.metric_failed(period=PERIOD, statistic="Sum")
        saga_timed_out = m.order_saga.metric_timed_out(period=PERIOD, statistic="Sum")
        needs_attention = m.functions["MarkNeedsAttention"].metric_invocations(period=PERIOD, statistic="Sum")
        notification_dlq = m.notification_dlq.metric_approximate_number_of_messages_visible(period=PERIOD)
        compensation_dlq = m.compensation_dlq.metric_approximate_number_of_messages_visible(period=PERIOD)
        self.alarms: dict[str, tuple[cloudwatch.IMetric, str]] = {
            "SagaExecutionsFailed": (saga_failed, "An order saga execution failed (not a compensated order)"),
            "SagaExecutionsTimedOut": (saga_timed_out, "An order saga execution timed out"),
            "CancellationExecutionsFailed": (
                m.order_cancellation.metric_failed(period=PERIOD, statistic="Sum"),
                "A cancellation execution failed",
            ),
            "CompensationFailed": (needs_attention, "A compensation failed; an order is NEEDS_ATTENTION"),
            "CompensationDlqNotEmpty": (compensation_dlq, "Failed compensations wait to be re-driven"),
            "NotificationDlqNotEmpty": (notification_dlq, "Notifications could not be sent"),
            "EdgeServerErrors": (
                edge_errors(),
                "The edge answered INTERNAL/UNKNOWN/UNAVAILABLE/DEADLINE_EXCEEDED",
            ),
        }
        for name, (metric, description) in self.alarms.items():
            alarm = cloudwatch.Alarm(
                self,
                name,
                alarm_name=f"{c.PROJECT}-{config.name}-{name}",
                alarm_description=description,
                metric=metric,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{c.PROJECT}-{config.name}")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Order saga executions",
                left=[
                    m.order_saga.metric_started(period=PERIOD, statistic="Sum"),
                    m.order_saga.metric_succeeded(period=PERIOD, statistic="Sum"),
                    saga_failed,
                    saga_timed_out,
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Execution time (p50, p99)",
                left=[m.order_saga.metric_time(statistic="p50"), m.order_saga.metric_time(statistic="p99")],
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
                title="Dead-letter queues",
                left=[notification_dlq, compensation_dlq, needs_attention],
                width=12,
            ),
            cloudwatch.GraphWidget(title="Edge server errors", left=[edge_errors()], width=12),
        )
