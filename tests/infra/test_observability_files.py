"""The repository's Prometheus scrape config and Grafana dashboard match what the edge exports."""

import json
import re

from cdk import constants as c

SCRAPE = c.REPO_ROOT / "observability" / "prometheus.yml"
DASHBOARD = c.REPO_ROOT / "observability" / "grafana-dashboard.json"


def test_prometheus_scrapes_the_edge_metrics_port() -> None:
    assert f"127.0.0.1:{c.METRICS_PORT}" in SCRAPE.read_text()


def test_grafana_dashboard_queries_only_metrics_the_edge_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    metrics = {m for e in exprs for m in re.findall(r"\b(grpc_server_\w+)", e)}
    allowed = {c.EDGE_HANDLED_METRIC, f"{c.EDGE_LATENCY_METRIC}_bucket"}
    assert metrics == allowed
    # Every server error code the CloudWatch alarm pages on is on the dashboard too
    assert all(code in " ".join(exprs) for code in c.EDGE_ERROR_CODES)
