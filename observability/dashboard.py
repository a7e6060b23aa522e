"""The Grafana dashboard of the order saga, built with grafanalib (never edited as JSON).

`make dashboard` writes it to observability/grafana-dashboard.json, which Grafana's provisioning
(observability/grafana/) loads; a test fails when the committed file drifts from this code. Every
query is run against a real Prometheus by the e2e tier, so a panel cannot silently show nothing.

Saga metrics are read by every edge task from MySQL and SQS, so their panels take `max` across
tasks; the gRPC metrics and the reconciler's actions are per task, so theirs take `sum`.
"""

import json
from pathlib import Path

from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

HERE = Path(__file__).parent
OUTPUT = HERE / "grafana-dashboard.json"
DATASOURCE = "${datasource}"
RATE = "$__rate_interval"

SERVER_ERRORS = 'grpc_code=~"INTERNAL|UNKNOWN|UNAVAILABLE|DEADLINE_EXCEEDED"'
CLIENT_ERRORS = (
    'grpc_code=~"INVALID_ARGUMENT|NOT_FOUND|FAILED_PRECONDITION|ALREADY_EXISTS|PERMISSION_DENIED'
    '|UNAUTHENTICATED|RESOURCE_EXHAUSTED"'
)
FINISHING_STEPS = 'step=~"ConfirmOrder|MarkOrderFailed|MarkOrderCancelled|MarkNeedsAttention"'
COMPENSATION_STEPS = 'step=~"RefundPayment|ReleaseStock|MarkOrderFailed|MarkOrderCancelled"'

# Panel title -> its queries, in order (refId A, B, ...); the core panels the e2e test requires data from.
CORE_PANELS = (
    "RPCs per second by method",
    "Error ratio (server errors / all RPCs)",
    "Latency p50 / p99 by method",
    "Orders by status",
    "Compensations per step",
)


def _targets(*queries: tuple[str, str]) -> list[g.Target]:
    return [
        g.Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + index), datasource=DATASOURCE)
        for index, (expr, legend) in enumerate(queries)
    ]


def timeseries(title: str, unit: str, *queries: tuple[str, str], x: int, y: int) -> g.TimeSeries:
    return g.TimeSeries(
        title=title,
        dataSource=DATASOURCE,
        targets=_targets(*queries),
        unit=unit,
        gridPos=g.GridPos(h=8, w=12, x=x, y=y),
    )


def stat(title: str, query: str, *, x: int, y: int, red_from: float = 1.0) -> g.Stat:
    return g.Stat(
        title=title,
        dataSource=DATASOURCE,
        targets=_targets((query, title)),
        gridPos=g.GridPos(h=4, w=6, x=x, y=y),
        thresholds=[
            g.Threshold("green", 0, 0.0),
            g.Threshold("red", 1, red_from),
        ],
        reduceCalc="last",
    )


def quantiles(across: str, label: str, buckets: str, levels: tuple[float, ...]) -> list[tuple[str, str]]:
    """Quantile queries of a histogram by one label (`across` the tasks: sum or max)."""
    return [
        (
            f"histogram_quantile({q}, {across} by (le, {label}) (rate({buckets}[{RATE}])))",
            f"p{round(q * 100)} {{{{{label}}}}}",
        )
        for q in levels
    ]


def panels() -> list[g.Panel]:
    return [
        g.RowPanel(title="gRPC edge", gridPos=g.GridPos(h=1, w=24, x=0, y=0)),
        timeseries(
            "RPCs per second by method",
            "reqps",
            (f"sum by (grpc_method) (rate(grpc_server_handled_total[{RATE}]))", "{{grpc_method}}"),
            x=0,
            y=1,
        ),
        timeseries(
            "RPCs per second by status code",
            "reqps",
            (f"sum by (grpc_code) (rate(grpc_server_handled_total[{RATE}]))", "{{grpc_code}}"),
            x=12,
            y=1,
        ),
        timeseries(
            "Latency p50 / p99 by method",
            "s",
            *quantiles("sum", "grpc_method", "grpc_server_handling_seconds_bucket", (0.5, 0.99)),
            x=0,
            y=9,
        ),
        timeseries(
            "Error ratio (server errors / all RPCs)",
            "percentunit",
            (
                f"(sum(rate(grpc_server_handled_total{{{SERVER_ERRORS}}}[{RATE}])) or vector(0))"
                f" / clamp_min(sum(rate(grpc_server_handled_total[{RATE}])), 1e-9)",
                "server errors",
            ),
            x=12,
            y=9,
        ),
        timeseries(
            "Server errors (INTERNAL, UNKNOWN, UNAVAILABLE, DEADLINE_EXCEEDED)",
            "reqps",
            (
                f"sum by (grpc_code) (rate(grpc_server_handled_total{{{SERVER_ERRORS}}}[{RATE}]))",
                "{{grpc_code}}",
            ),
            x=0,
            y=17,
        ),
        timeseries(
            "Client errors (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ...)",
            "reqps",
            (
                f"sum by (grpc_code) (rate(grpc_server_handled_total{{{CLIENT_ERRORS}}}[{RATE}]))",
                "{{grpc_code}}",
            ),
            x=12,
            y=17,
        ),
        g.RowPanel(title="Sagas", gridPos=g.GridPos(h=1, w=24, x=0, y=25)),
        stat("Orders needing attention", 'max(order_saga_orders{status="NEEDS_ATTENTION"})', x=0, y=26),
        stat("Compensation DLQ messages", "max(order_saga_compensation_dlq_messages)", x=6, y=26),
        stat("Orders pending", 'max(order_saga_orders{status="PENDING"})', x=12, y=26, red_from=100.0),
        stat("Saga metrics readable", "min(order_saga_saga_metrics_up)", x=18, y=26, red_from=2.0),
        timeseries(
            "Orders by status",
            "short",
            ("max by (status) (order_saga_orders)", "{{status}}"),
            x=0,
            y=30,
        ),
        timeseries(
            "Sagas finished per minute, by final status",
            "short",
            (
                f"max by (status) (rate(order_saga_saga_steps_total{{{FINISHING_STEPS}}}[{RATE}])) * 60",
                "{{status}}",
            ),
            x=12,
            y=30,
        ),
        timeseries(
            "Compensations per step",
            "short",
            (
                "max by (step, status) "
                f"(increase(order_saga_saga_steps_total{{{COMPENSATION_STEPS}}}[{RATE}]))",
                "{{step}} {{status}}",
            ),
            x=0,
            y=38,
        ),
        timeseries(
            "Create to final status, p50 / p95",
            "s",
            *quantiles("max", "outcome", "order_saga_create_to_final_seconds_bucket", (0.5, 0.95)),
            x=12,
            y=38,
        ),
        timeseries(
            "Reconciler and watchdog actions",
            "short",
            (f"sum by (actor, action) (increase(order_saga_repairs_total[{RATE}]))", "{{actor}} {{action}}"),
            x=0,
            y=46,
        ),
    ]


def dashboard() -> g.Dashboard:
    return g.Dashboard(
        title="order-saga",
        uid="order-saga-edge",
        tags=["order-saga", "grpc", "saga"],
        timezone="utc",
        refresh="30s",
        time=g.Time("now-1h", "now"),
        templating=g.Templating(
            [
                g.Template(
                    name="datasource", type="datasource", query="prometheus", label="Prometheus", default=""
                )
            ]
        ),
        panels=panels(),
    ).auto_panel_ids()


def render() -> str:
    return json.dumps(dashboard().to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"


def queries(document: dict[str, object]) -> dict[str, list[str]]:
    """Panel title -> the PromQL of each of its targets, read from a dashboard JSON document."""
    found: dict[str, list[str]] = {}
    for panel in document["panels"]:  # type: ignore[attr-defined]
        for target in panel.get("targets", []):
            found.setdefault(panel["title"], []).append(target["expr"])
    return found


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(HERE.parent)}")
