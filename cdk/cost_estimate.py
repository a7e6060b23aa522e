"""The monthly cost of one environment, read from its synthesized templates (cdk.out) and a volume.

`make cost ORDERS=1000000` (after `make synth`), or
`python -m cdk.cost_estimate --cdk-out cdk.out --orders 1000000 [--token-per-call]`.

What the deployment is made of (endpoints, NAT gateways, public addresses, instances, nodes,
tasks, keys, secrets, alarms, app clients) is counted in the templates, so the estimate follows
the code. What an order costs comes from the saga's path (docs/deploy.md) and the assumptions
below. Prices: us-east-1 list prices, on demand, before free tiers; PRICES names each source.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

# What one confirmed order does (docs/deploy.md, "Per order"), and the assumptions of the estimate.
TRANSITIONS_PER_ORDER = 5
INVOCATIONS_PER_ORDER = 4
SECONDS_PER_INVOCATION = 0.1
SQS_REQUESTS_PER_ORDER = 3
EMAILS_PER_ORDER = 1
LOG_KB_PER_TRANSITION = 1.0  # a state machine log event at level ALL with execution data
LAMBDA_LOG_KB_PER_INVOCATION = 1.0
ENDPOINT_KB_PER_ORDER = 8.0  # StartExecution, log and trace traffic of one order through the endpoints
NAT_KB_PER_ORDER = 8.0  # the payment gateway call and the SES send
PROMETHEUS_SERIES_PER_TASK = 300  # the edge's counters and histogram buckets, per task
SCRAPE_SECONDS = 15
XRAY_RESERVOIR_PER_SECOND = 1  # the sampling rule's reservoir
TOKEN_CLIENTS = 1  # machine clients, each caching its one-hour token
ORDERS_PER_ACTIVE_SHOPPER = 2  # a month: the shoppers who sign in (or refresh) are the user pool's MAU
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


def sampled_traces(orders: float, fixed_rate: float) -> float:
    """Traces the sampling rule records: the reservoir first, then the fixed rate of the rest."""
    reservoir = XRAY_RESERVOIR_PER_SECOND * HOURS * 3600
    return min(orders, reservoir) + fixed_rate * max(0.0, orders - reservoir)


def volume_lines(stacks: list[dict[str, Any]], orders: float, *, token_per_call: bool) -> list[Line]:
    """What grows with orders (and the Prometheus samples, with tasks)."""
    machines = resources(stacks, "AWS::StepFunctions::StateMachine")
    level_all = any(m.get("LoggingConfiguration", {}).get("Level") == "ALL" for m in machines)
    memories = [f["MemorySize"] for f in resources(stacks, "AWS::Lambda::Function") if "FunctionName" in f]
    gb = sum(memories) / len(memories) / 1024
    (rule,) = resources(stacks, "AWS::XRay::SamplingRule")
    invocations = orders * INVOCATIONS_PER_ORDER
    log_kb = invocations * LAMBDA_LOG_KB_PER_INVOCATION
    if level_all:
        log_kb += orders * TRANSITIONS_PER_ORDER * 2 * LOG_KB_PER_TRANSITION  # entered and exited
    tasks = sum(s["DesiredCount"] for s in resources(stacks, "AWS::ECS::Service"))
    samples = tasks * PROMETHEUS_SERIES_PER_TASK * HOURS * 3600 / SCRAPE_SECONDS
    tokens = orders if token_per_call else TOKEN_CLIENTS * HOURS
    return [
        Line(
            "Step Functions",
            f"{TRANSITIONS_PER_ORDER} transitions per order",
            cost("sfn_transition", orders * TRANSITIONS_PER_ORDER),
            "sfn_transition",
        ),
        Line(
            "Lambda requests",
            f"{INVOCATIONS_PER_ORDER} per order",
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
            f"{SQS_REQUESTS_PER_ORDER} requests per order",
            cost("sqs_request", orders * SQS_REQUESTS_PER_ORDER),
            "sqs_request",
        ),
        Line(
            "SES",
            f"{EMAILS_PER_ORDER} e-mail per order",
            cost("ses_email", orders * EMAILS_PER_ORDER),
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
            f"level {'ALL' if level_all else 'ERROR'} + function logs",
            cost("logs_gb", log_kb / KB_PER_GB),
            "logs_gb",
        ),
        Line(
            "X-Ray traces",
            f"reservoir {XRAY_RESERVOIR_PER_SECOND}/s + {rule['SamplingRule']['FixedRate']:g}",
            cost("xray_trace", sampled_traces(orders, float(rule["SamplingRule"]["FixedRate"]))),
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


def estimate(cdk_out: Path, orders: float, *, token_per_call: bool = False) -> tuple[list[Line], list[Line]]:
    stacks = templates(cdk_out)
    return fixed_lines(stacks), volume_lines(stacks, orders, token_per_call=token_per_call)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument("--orders", type=float, required=True, help="confirmed orders a month")
    parser.add_argument("--token-per-call", action="store_true", help="clients fetch a token for every call")
    args = parser.parse_args(argv)
    if args.orders < 0:
        parser.error("--orders must not be negative")
    try:
        fixed, volume = estimate(args.cdk_out, args.orders, token_per_call=args.token_per_call)
    except (FileNotFoundError, UnknownPrice) as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    total = sum(line.usd for line in fixed + volume)
    per_million = sum(line.usd for line in volume) / max(args.orders, 1) * 1e6
    print(f"Monthly estimate for {args.orders:,.0f} orders ({args.cdk_out}), us-east-1 list prices")
    print("\n".join(render("Always on", fixed)))
    print("\n".join(render("With the volume", volume)))
    print(f"  {'total':<79} ${total:>10,.2f}")
    print(f"  {'per 1M orders (volume part)':<79} ${per_million:>10,.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
