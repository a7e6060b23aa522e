"""The monthly cost of one environment, read from its synthesized templates (cdk.out) and a volume.

`make cost ORDERS=1000000` (after `make synth`), or
`python -m cdk.cost_estimate --cdk-out cdk.out --orders 1000000 [--token-per-call]`.

What the deployment is made of (endpoints, NAT gateways, public addresses, instances, nodes,
tasks, keys, secrets, alarms, app clients, Container Insights) is counted in the templates, so
the estimate follows the code. What an order does follows its path through the state machines'
definitions in cdk.out (cdk/order_paths.py) and the mix of outcomes PATHS assumes; the custom
metrics are read from the functions' code and the collector's configuration
(cdk/custom_metrics.py). Prices: us-east-1 list prices, on demand, before free tiers; PRICES names
each source. docs/deploy.md ("What it costs") prints this script's output, and a test keeps it so.
"""

import argparse
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cdk import custom_metrics
from cdk.order_paths import PATHS, Execution, OrderPath, UnknownPath, execute

HOURS = 730  # a month, as AWS prices it


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


PRICING_PAGE = "https://aws.amazon.com/{}/pricing/"
PRICES = {
    "fargate_vcpu_hour": Price(0.03238, "vCPU-hour, arm64", PRICING_PAGE.format("fargate")),
    "fargate_gb_hour": Price(0.00356, "GB-hour, arm64", PRICING_PAGE.format("fargate")),
    "rds_gp3_gb_month": Price(0.115, "GB-month, single-AZ", PRICING_PAGE.format("rds/mysql")),
    "rds_proxy_vcpu_hour": Price(0.015, "instance vCPU-hour, 2 minimum", PRICING_PAGE.format("rds/proxy")),
    "rds_extended_support_vcpu_hour": Price(
        0.100,
        "vCPU-hour, years 1-2 (MySQL 8.0 after 2026-07-31)",
        "https://aws.amazon.com/blogs/aws-cloud-financial-management/"
        "estimating-the-charges-for-amazon-rds-extended-support/",
    ),
    "nat_hour": Price(0.045, "NAT gateway-hour", PRICING_PAGE.format("vpc")),
    "nat_gb": Price(0.045, "GB processed", PRICING_PAGE.format("vpc")),
    "endpoint_az_hour": Price(0.01, "interface endpoint per AZ-hour", PRICING_PAGE.format("privatelink")),
    "endpoint_gb": Price(0.01, "GB processed (first PB)", PRICING_PAGE.format("privatelink")),
    "public_ipv4_hour": Price(
        0.005,
        "public IPv4 address-hour",
        "https://aws.amazon.com/blogs/aws/new-aws-public-ipv4-address-charge-public-ip-insights/",
    ),
    "nlb_hour": Price(0.0225, "load balancer-hour", PRICING_PAGE.format("elasticloadbalancing")),
    "nlcu_hour": Price(0.006, "NLCU-hour", PRICING_PAGE.format("elasticloadbalancing")),
    "kms_key_month": Price(1.00, "customer-managed key-month", PRICING_PAGE.format("kms")),
    "secret_month": Price(0.40, "secret-month", PRICING_PAGE.format("secrets-manager")),
    "alarm_metric_month": Price(0.10, "standard alarm metric-month", PRICING_PAGE.format("cloudwatch")),
    "custom_metric_month": Price(
        0.30, "custom metric-month (first 10,000)", PRICING_PAGE.format("cloudwatch")
    ),
    "dashboard_month": Price(3.00, "dashboard-month", PRICING_PAGE.format("cloudwatch")),
    "cognito_m2m_client_month": Price(
        6.00,
        "M2M app client-month (third-party summary; not verified on the AWS page here)",
        "https://www.rhythmictech.com/blog/the-aws-cognito-m2m-bill-has-come-due-what-you-need-to-know/",
    ),
    "cognito_m2m_token": Price(
        0.00225,
        "token request ($2.25 per 1,000)",
        "https://cur.vantage-api.com/aws/amazoncognito/user-pools-m2m/cupm2mtokenrequestsfull",
    ),
    # The user pool's feature plans, per monthly active user (a third-party transcription of the
    # pricing page; not verified on the AWS page here). Essentials' first 10,000 are free.
    "cognito_mau_essentials": Price(0.015, "monthly active user, Essentials", PRICING_PAGE.format("cognito")),
    "cognito_mau_plus": Price(0.020, "monthly active user, Plus", PRICING_PAGE.format("cognito")),
    "sfn_transition": Price(0.000025, "state transition, Standard", PRICING_PAGE.format("step-functions")),
    "lambda_request": Price(0.0000002, "request", PRICING_PAGE.format("lambda")),
    "lambda_gb_second": Price(0.0000133334, "GB-second, arm64", PRICING_PAGE.format("lambda")),
    "sqs_request": Price(0.0000004, "request, standard queue", PRICING_PAGE.format("sqs")),
    "ses_email": Price(0.0001, "e-mail ($0.10 per 1,000)", PRICING_PAGE.format("ses")),
    "logs_gb": Price(0.50, "GB ingested", PRICING_PAGE.format("cloudwatch")),
    "xray_trace": Price(0.000005, "trace recorded", PRICING_PAGE.format("xray")),
    "amp_sample": Price(
        0.90 / 10_000_000,
        "sample ingested (first 2 billion; not verified here)",
        PRICING_PAGE.format("prometheus"),
    ),
}
# Hourly prices by instance class (from the RDS and ElastiCache pricing pages, us-east-1).
RDS_HOURLY = {"db.t4g.micro": 0.016, "db.m7g.large": 0.168}
CACHE_HOURLY = {"cache.t4g.micro": 0.016, "cache.m7g.large": 0.158}
VCPUS: dict[str, float] = {"db.t4g.micro": 2, "db.m7g.large": 2}

# What an order does comes from its path (cdk/order_paths.py: PATHS, the mix of outcomes); the
# rest are the assumptions of the estimate (docs/deploy.md, "What it costs").
SECONDS_PER_INVOCATION = 0.1
SQS_REQUESTS_PER_NOTICE = 3  # SendMessage, the notifier's ReceiveMessage and DeleteMessage
RPCS_PER_ORDER = 2  # CreateOrder, then one GetOrder or WatchOrder; a cancellation adds CancelOrder
# Log bytes, measured on the local stack (`make demo`: 7 orders, every path but a cancellation
# while pending): the edge writes one access-log line per RPC (315 bytes); a function's Powertools
# output per invocation is its EMF metrics line (288 bytes on average over 37 invocations, nothing
# else on these paths). Lambda adds START, END and REPORT lines (with the X-Ray trace id) to each
# invocation, about 360 bytes in the format the Lambda developer guide shows.
ACCESS_LOG_BYTES = 315
FUNCTION_LOG_BYTES = 288 + 360
# A state machine's history event as its log group receives it, measured on the local stack's
# Step Functions (moto, which records AWS's event shapes): 300 bytes without execution data; with
# it 630 bytes, and 2,400 bytes once a caught error travels in the state (the function's error
# with its stack trace: the local paths are longer than Lambda's, so this errs high).
SFN_EVENT_BYTES = 300
SFN_DATA_EVENT_BYTES = 630
SFN_DATA_ERROR_EVENT_BYTES = 2400
ENDPOINT_KB_PER_ORDER = 8.0  # StartExecution, log and trace traffic of one order through the endpoints
NAT_KB_PER_ORDER = 8.0  # the payment gateway call and the SES send
PROMETHEUS_SERIES_PER_TASK = 300  # the edge's counters and histogram buckets, per task
SCRAPE_SECONDS = 15
XRAY_RESERVOIR_PER_SECOND = 1  # the sampling rule's reservoir
TOKEN_CLIENTS = 1  # machine clients, each caching its one-hour token
ORDERS_PER_ACTIVE_SHOPPER = 2  # a month: the shoppers who sign in (or refresh) are the user pool's MAU
# Container Insights (standard, not enhanced observability) for ECS: the metrics of the CloudWatch
# user guide's "Amazon ECS Container Insights metrics" table, billed as custom metrics. Per
# cluster: 8 resource metrics (CPU, memory, network, storage; reserved and used) + TaskCount and
# ServiceCount; per service: the same 8 + 5 task and deployment counts; per task definition family:
# the 8 (ContainerInstanceCount only on EC2). Its performance log events, one a minute per cluster,
# service, task and container ("Container Insights performance log events for Amazon ECS": the
# examples are 0.6 to 1.6 KB), are ingested as logs.
INSIGHTS_METRICS = {"cluster": 10, "service": 13, "family": 8}
INSIGHTS_EVENT_KB = 1.0
MINUTES = HOURS * 60
# The price of a monthly active user by the user pool's plan (`UserPoolTier`, Essentials if absent).
MAU_PRICES = {"ESSENTIALS": "cognito_mau_essentials", "PLUS": "cognito_mau_plus"}
KB_PER_GB = 1024 * 1024


@dataclass(frozen=True)
class Line:
    item: str
    detail: str
    usd: float
    price: str  # the PRICES key (or a class table) the figure comes from


def templates(cdk_out: Path) -> list[dict[str, Any]]:
    found = sorted(cdk_out.glob("*.template.json"))
    if not found:
        raise FileNotFoundError(f"no *.template.json in {cdk_out}: run `make synth` (CDK_ENV=dev|prod) first")
    return [json.loads(path.read_text()) for path in found]


def resources(stacks: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for t in stacks for r in t["Resources"].values() if r["Type"] == kind]


class UnknownPrice(KeyError):
    """The templates name an instance class the estimate has no price for."""


def hourly(table: dict[str, float], cls: str) -> float:
    try:
        return table[cls]
    except KeyError:
        raise UnknownPrice(
            f"no hourly price for {cls}: add it to cdk/cost_estimate.py ({', '.join(table)})"
        ) from None


def cost(key: str, quantity: float) -> float:
    return PRICES[key].usd * quantity


def task_definitions(stacks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The task definitions by logical id (a service names its own; the operator's one-off task
    costs only while an operator runs it)."""
    return {
        logical_id: resource.get("Properties", {})
        for template in stacks
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::ECS::TaskDefinition"
    }


def fixed_lines(stacks: list[dict[str, Any]]) -> list[Line]:
    """The always-on parts, each counted in the templates."""
    lines = []
    tasks = task_definitions(stacks)
    for service in resources(stacks, "AWS::ECS::Service"):
        task = tasks[service["TaskDefinition"]["Ref"]]
        count, vcpu, gb = service["DesiredCount"], int(task["Cpu"]) / 1024, int(task["Memory"]) / 1024
        usd = count * HOURS * (cost("fargate_vcpu_hour", vcpu) + cost("fargate_gb_hour", gb))
        lines.append(
            Line("Fargate (edge)", f"{count} x ({vcpu:g} vCPU, {gb:g} GB)", usd, "fargate_vcpu_hour")
        )
    for db in resources(stacks, "AWS::RDS::DBInstance"):
        cls, multi = db["DBInstanceClass"], bool(db.get("MultiAZ"))
        copies = 2 if multi else 1
        storage = int(db["AllocatedStorage"])
        lines.append(
            Line(
                f"RDS {cls}",
                f"{'multi-AZ' if multi else 'single-AZ'}",
                hourly(RDS_HOURLY, cls) * HOURS * copies,
                "RDS_HOURLY",
            )
        )
        lines.append(
            Line(
                "RDS gp3 storage",
                f"{storage} GB x {copies}",
                cost("rds_gp3_gb_month", storage * copies),
                "rds_gp3_gb_month",
            )
        )
        version = str(db.get("EngineVersion", ""))
        extended = cost("rds_extended_support_vcpu_hour", int(hourly(VCPUS, cls)) * copies * HOURS)
        on_80 = version.startswith("8.0")
        lines.append(
            Line(
                "RDS Extended Support",
                f"MySQL {version}: "
                + ("enrolled" if on_80 else f"none (on 8.0 it would be ${extended:,.2f})"),
                extended if on_80 else 0.0,
                "rds_extended_support_vcpu_hour",
            )
        )
        for _ in resources(stacks, "AWS::RDS::DBProxy"):
            vcpus = max(2, int(hourly(VCPUS, cls)))
            lines.append(
                Line(
                    "RDS Proxy",
                    f"{vcpus} vCPU",
                    cost("rds_proxy_vcpu_hour", vcpus * HOURS),
                    "rds_proxy_vcpu_hour",
                )
            )
    for group in resources(stacks, "AWS::ElastiCache::ReplicationGroup"):
        node, nodes = group["CacheNodeType"], int(group["NumCacheClusters"])
        lines.append(
            Line(
                "ElastiCache", f"{nodes} x {node}", hourly(CACHE_HOURLY, node) * HOURS * nodes, "CACHE_HOURLY"
            )
        )
    nats = len(resources(stacks, "AWS::EC2::NatGateway"))
    lines.append(Line("NAT gateways", f"{nats}", cost("nat_hour", nats * HOURS), "nat_hour"))
    endpoints = [
        e for e in resources(stacks, "AWS::EC2::VPCEndpoint") if e.get("VpcEndpointType") == "Interface"
    ]
    azs = sum(len(e["SubnetIds"]) for e in endpoints)
    lines.append(
        Line(
            "Interface endpoints",
            f"{len(endpoints)} x AZs = {azs}",
            cost("endpoint_az_hour", azs * HOURS),
            "endpoint_az_hour",
        )
    )
    nlbs = [
        lb
        for lb in resources(stacks, "AWS::ElasticLoadBalancingV2::LoadBalancer")
        if lb.get("Type") == "network"
    ]
    lines.append(
        Line(
            "NLB",
            f"{len(nlbs)} + 1 NLCU",
            len(nlbs) * HOURS * (PRICES["nlb_hour"].usd + PRICES["nlcu_hour"].usd),
            "nlb_hour",
        )
    )
    public = nats + sum(len(lb.get("Subnets", [])) for lb in nlbs if lb.get("Scheme") == "internet-facing")
    lines.append(
        Line(
            "Public IPv4",
            f"{public} (NAT + NLB per AZ)",
            cost("public_ipv4_hour", public * HOURS),
            "public_ipv4_hour",
        )
    )
    counted = {
        "KMS keys": ("AWS::KMS::Key", "kms_key_month"),
        "Secrets": ("AWS::SecretsManager::Secret", "secret_month"),
        "Dashboards": ("AWS::CloudWatch::Dashboard", "dashboard_month"),
    }
    for item, (kind, key) in counted.items():
        n = len(resources(stacks, kind))
        lines.append(Line(item, f"{n}", cost(key, n), key))
    # Only clients with the client-credentials grant are M2M; the customer app's are shoppers (MAU).
    machines = [
        client
        for client in resources(stacks, "AWS::Cognito::UserPoolClient")
        if "client_credentials" in client.get("AllowedOAuthFlows", [])
    ]
    lines.append(
        Line(
            "Cognito M2M app clients",
            f"{len(machines)}",
            cost("cognito_m2m_client_month", len(machines)),
            "cognito_m2m_client_month",
        )
    )
    alarm_metrics = sum(
        len([m for m in a["Metrics"] if "MetricStat" in m]) if "Metrics" in a else 1
        for a in resources(stacks, "AWS::CloudWatch::Alarm")
    )
    lines.append(
        Line(
            "CloudWatch alarms",
            f"{alarm_metrics} alarm metrics",
            cost("alarm_metric_month", alarm_metrics),
            "alarm_metric_month",
        )
    )
    functions = len(custom_metrics.function_metric_set())
    edge = custom_metrics.edge_metric_count(stacks)
    lines.append(
        Line(
            "Custom metrics (EMF)",
            f"{functions} of the functions + {edge} of the edge",
            cost("custom_metric_month", functions + edge),
            "custom_metric_month",
        )
    )
    lines += container_insights(stacks)
    return lines


def container_insights(stacks: list[dict[str, Any]]) -> list[Line]:
    """Container Insights of each cluster that enables it: its metrics, and its performance
    events ingested as logs (one a minute per cluster, service, running task and container)."""
    ecs = {
        logical_id: resource
        for template in stacks
        for logical_id, resource in template["Resources"].items()
        if resource["Type"].startswith("AWS::ECS::")
    }
    tasks = task_definitions(stacks)
    lines = []
    for cluster_id, cluster in ecs.items():
        settings = {s["Name"]: s["Value"] for s in cluster.get("Properties", {}).get("ClusterSettings", [])}
        mode = settings.get("containerInsights", "disabled")
        if cluster["Type"] != "AWS::ECS::Cluster" or mode == "disabled":
            continue
        if mode != "enabled":
            raise UnknownPrice(f"no price for Container Insights {mode}: add it to cdk/cost_estimate.py")
        services = [
            r["Properties"]
            for r in ecs.values()
            if r["Type"] == "AWS::ECS::Service" and r["Properties"].get("Cluster") == {"Ref": cluster_id}
        ]
        families = {json.dumps(service["TaskDefinition"]) for service in services}
        metrics = (
            INSIGHTS_METRICS["cluster"]
            + INSIGHTS_METRICS["service"] * len(services)
            + INSIGHTS_METRICS["family"] * len(families)
        )
        events = 1  # the cluster's
        for service in services:
            containers = len(tasks[service["TaskDefinition"]["Ref"]]["ContainerDefinitions"])
            events += 1 + service["DesiredCount"] * (1 + containers)  # the service's, its tasks'
        gb = events * MINUTES * INSIGHTS_EVENT_KB / KB_PER_GB
        lines.append(
            Line(
                "Container Insights",
                f"{metrics} metrics + {gb:.2f} GB of performance events",
                cost("custom_metric_month", metrics) + cost("logs_gb", gb),
                "custom_metric_month",
            )
        )
    return lines


def shoppers_line(stacks: list[dict[str, Any]], orders: float) -> Line:
    """The user pool's monthly active users, billed by its feature plan."""
    (pool,) = resources(stacks, "AWS::Cognito::UserPool")
    plan = str(pool.get("UserPoolTier", "ESSENTIALS"))
    try:
        key = MAU_PRICES[plan]
    except KeyError:
        raise UnknownPrice(f"no MAU price for the {plan} plan: add it to cdk/cost_estimate.py") from None
    shoppers = orders / ORDERS_PER_ACTIVE_SHOPPER
    return Line(
        "Cognito active shoppers", f"{shoppers:,.0f} a month, {plan.title()} plan", cost(key, shoppers), key
    )


def sampled_traces(traces: float, fixed_rate: float) -> float:
    """Traces the sampling rule records: the reservoir first, then the fixed rate of the rest."""
    reservoir = XRAY_RESERVOIR_PER_SECOND * HOURS * 3600
    return min(traces, reservoir) + fixed_rate * max(0.0, traces - reservoir)


def state_machines(cdk_out: Path, stacks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The state machines' definitions by their manifest name: inline, or the asset in cdk.out."""
    found = {}
    for machine in resources(stacks, "AWS::StepFunctions::StateMachine"):
        name = str(machine["StateMachineName"]).rsplit("-", 1)[-1]
        if "DefinitionString" in machine:
            text = str(machine["DefinitionString"])
        else:
            text = (cdk_out / f"asset.{machine['DefinitionS3Location']['Key']}").read_text()
        found[name] = json.loads(text)
    return found


@dataclass(frozen=True)
class Logging:
    """A state machine's logging configuration."""

    level: str  # ALL, ERROR, FATAL or OFF
    data: bool  # IncludeExecutionData

    def event_bytes(self, after_error: bool) -> int:
        if not self.data:
            return SFN_EVENT_BYTES
        return SFN_DATA_ERROR_EVENT_BYTES if after_error else SFN_DATA_EVENT_BYTES

    def bytes(self, execution: Execution) -> float:
        """What one execution writes to its log group: every history event at ALL, the error
        events at ERROR (each carries the error), nothing otherwise (FATAL: none on these paths)."""
        if self.level == "ALL":
            return sum(events * self.event_bytes(after_error) for events, after_error in execution.events())
        if self.level == "ERROR":
            return execution.error_events * self.event_bytes(after_error=True)
        return 0.0


def logging_of(stacks: list[dict[str, Any]]) -> dict[str, Logging]:
    return {
        str(m["StateMachineName"]).rsplit("-", 1)[-1]: Logging(
            str(m.get("LoggingConfiguration", {}).get("Level", "OFF")),
            bool(m.get("LoggingConfiguration", {}).get("IncludeExecutionData")),
        )
        for m in resources(stacks, "AWS::StepFunctions::StateMachine")
    }


@dataclass(frozen=True)
class PerOrder:
    """What one order of a path does, or the mean over the mix of paths."""

    transitions: float
    step_invocations: float  # the functions the state machines invoke
    notices: float  # queued for the notifier: one invocation and one e-mail each
    watchdog: float  # executions that end FAILED: the watchdog's rule invokes it for each
    executions: float
    rpcs: float
    state_log_bytes: float

    @property
    def invocations(self) -> float:
        return self.step_invocations + self.notices + self.watchdog

    @property
    def traces(self) -> float:
        """A trace per execution, and one per notifier and watchdog invocation (each starts its own)."""
        return self.executions + self.notices + self.watchdog

    @property
    def log_bytes(self) -> float:
        return self.rpcs * ACCESS_LOG_BYTES + self.invocations * FUNCTION_LOG_BYTES + self.state_log_bytes


def per_order(
    path: OrderPath, definitions: dict[str, dict[str, Any]], logging: dict[str, Logging]
) -> PerOrder:
    runs = [(run, execute(definitions, run)) for run in path.runs]
    return PerOrder(
        transitions=sum(e.transitions for _, e in runs),
        step_invocations=sum(e.invocations for _, e in runs),
        notices=sum(e.notices for _, e in runs),
        watchdog=sum(int(e.failed) for _, e in runs),
        executions=len(runs),
        rpcs=RPCS_PER_ORDER + int(path.cancelled),
        state_log_bytes=sum(logging[run.machine].bytes(e) for run, e in runs),
    )


def mean(weighted: list[tuple[float, PerOrder]]) -> PerOrder:
    """The mean order over the mix: each figure weighted by its path's share."""
    return PerOrder(
        **{f.name: sum(share * getattr(order, f.name) for share, order in weighted) for f in fields(PerOrder)}
    )


def path_table(paths: list[tuple[OrderPath, PerOrder]], average: PerOrder) -> list[str]:
    """What an order does by its outcome, and on average over the mix."""
    header = ("share", "transitions", "invocations", "notices", "watchdog", "log KB")
    out = [
        "Per order, by outcome (the state machines in cdk.out; invocations include the notifier's "
        "and the watchdog's):"
    ]
    out.append(f"  {'outcome':<30}" + "".join(f"{h:>12}" for h in header))

    def row(name: str, share: str, o: PerOrder, digits: int) -> str:
        figures = (o.transitions, o.invocations, o.notices, o.watchdog, o.log_bytes / 1024)
        return (
            f"  {name:<30}{share:>12}"
            + "".join(f"{f:>12.{digits}f}" for f in figures[:-1])
            + (f"{figures[-1]:>12.1f}")
        )

    out += [row(path.name, f"{path.share:.0%}", order, 0) for path, order in paths]
    out.append(row("mean", "", average, 2))
    return out


def orders_by_path(cdk_out: Path, stacks: list[dict[str, Any]]) -> list[tuple[OrderPath, PerOrder]]:
    definitions, logging = state_machines(cdk_out, stacks), logging_of(stacks)
    return [(path, per_order(path, definitions, logging)) for path in PATHS]


def volume_lines(
    stacks: list[dict[str, Any]], orders: float, average: PerOrder, *, token_per_call: bool
) -> list[Line]:
    """What grows with orders (and the Prometheus samples, with tasks)."""
    levels = {f"{log.level}{' with data' if log.data else ''}" for log in logging_of(stacks).values()}
    memories = [f["MemorySize"] for f in resources(stacks, "AWS::Lambda::Function") if "FunctionName" in f]
    gb = sum(memories) / len(memories) / 1024
    (rule,) = resources(stacks, "AWS::XRay::SamplingRule")
    rate = float(rule["SamplingRule"]["FixedRate"])
    invocations = orders * average.invocations
    tasks = sum(s["DesiredCount"] for s in resources(stacks, "AWS::ECS::Service"))
    samples = tasks * PROMETHEUS_SERIES_PER_TASK * HOURS * 3600 / SCRAPE_SECONDS
    tokens = orders if token_per_call else TOKEN_CLIENTS * HOURS
    return [
        Line(
            "Step Functions",
            f"{average.transitions:.2f} transitions per order",
            cost("sfn_transition", orders * average.transitions),
            "sfn_transition",
        ),
        Line(
            "Lambda requests",
            f"{average.invocations:.2f} per order",
            cost("lambda_request", invocations),
            "lambda_request",
        ),
        Line(
            "Lambda duration",
            f"{SECONDS_PER_INVOCATION:g} s at {gb:.2f} GB",
            cost("lambda_gb_second", invocations * SECONDS_PER_INVOCATION * gb),
            "lambda_gb_second",
        ),
        Line(
            "SQS",
            f"{SQS_REQUESTS_PER_NOTICE} requests per notice",
            cost("sqs_request", orders * average.notices * SQS_REQUESTS_PER_NOTICE),
            "sqs_request",
        ),
        Line(
            "SES",
            f"{average.notices:.2f} e-mails per order",
            cost("ses_email", orders * average.notices),
            "ses_email",
        ),
        shoppers_line(stacks, orders),
        Line(
            "Cognito token requests",
            "one per call" if token_per_call else f"{TOKEN_CLIENTS} client caching its 1-hour token",
            cost("cognito_m2m_token", tokens),
            "cognito_m2m_token",
        ),
        Line(
            "CloudWatch Logs",
            f"{average.log_bytes / 1024:.1f} KB per order, states {', '.join(sorted(levels))}",
            cost("logs_gb", orders * average.log_bytes / 1024 / KB_PER_GB),
            "logs_gb",
        ),
        Line(
            "X-Ray traces",
            f"{average.traces:.2f} per order, reservoir {XRAY_RESERVOIR_PER_SECOND}/s + {rate:g}",
            cost("xray_trace", sampled_traces(orders * average.traces, rate)),
            "xray_trace",
        ),
        Line(
            "Endpoint data processing",
            f"{ENDPOINT_KB_PER_ORDER:g} KB per order",
            cost("endpoint_gb", orders * ENDPOINT_KB_PER_ORDER / KB_PER_GB),
            "endpoint_gb",
        ),
        Line(
            "NAT data processing",
            f"{NAT_KB_PER_ORDER:g} KB per order",
            cost("nat_gb", orders * NAT_KB_PER_ORDER / KB_PER_GB),
            "nat_gb",
        ),
        Line(
            "Managed Prometheus ingestion",
            f"{tasks} task(s) x {PROMETHEUS_SERIES_PER_TASK} series / {SCRAPE_SECONDS} s",
            cost("amp_sample", samples),
            "amp_sample",
        ),
    ]


def render(title: str, lines: list[Line]) -> list[str]:
    out = [f"{title}:"]
    out += [f"  {line.item:<30} {line.detail:<48} ${line.usd:>10,.2f}" for line in lines]
    out.append(f"  {'subtotal':<79} ${sum(line.usd for line in lines):>10,.2f}")
    return out


def environment(cdk_out: Path) -> str:
    """The stacks' common name prefix (`OrderSaga-prod`), from the templates' file names."""
    names = [path.name.removesuffix(".template.json") for path in cdk_out.glob("*.template.json")]
    return min(names).rsplit("-", 1)[0] if names else str(cdk_out)


def report(cdk_out: Path, orders: float, *, token_per_call: bool = False) -> list[str]:
    """The estimate as the script prints it."""
    stacks = templates(cdk_out)
    paths = orders_by_path(cdk_out, stacks)
    average = mean([(path.share, order) for path, order in paths])
    fixed = fixed_lines(stacks)
    volume = volume_lines(stacks, orders, average, token_per_call=token_per_call)
    total = sum(line.usd for line in fixed + volume)
    per_million = sum(line.usd for line in volume) / max(orders, 1) * 1e6
    return [
        f"Monthly estimate of {environment(cdk_out)} for {orders:,.0f} orders ({cdk_out}), "
        "us-east-1 list prices",
        *path_table(paths, average),
        *render("Always on", fixed),
        *render("With the volume", volume),
        f"  {'total':<79} ${total:>10,.2f}",
        f"  {'per 1M orders (volume part)':<79} ${per_million:>10,.2f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument("--orders", type=float, required=True, help="orders placed a month, every outcome")
    parser.add_argument("--token-per-call", action="store_true", help="clients fetch a token for every call")
    args = parser.parse_args(argv)
    if args.orders < 0:
        parser.error("--orders must not be negative")
    try:
        lines = report(args.cdk_out, args.orders, token_per_call=args.token_per_call)
    except (FileNotFoundError, UnknownPrice, UnknownPath, custom_metrics.UnreadableMetric) as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
