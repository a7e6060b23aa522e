"""Prometheus (Debian's) scraping the local stack after the demo: every query of the Grafana
dashboard parses and runs, the core panels show data, the saga metrics agree with MySQL, and the
alert rules are loaded and react to the flagged order."""

import json
import time
import urllib.parse
import urllib.request
from typing import Any

from observability import dashboard
from order_saga.models import OrderStatus
from tests.support.console import ConsoleStack

WAIT_SECONDS = 120  # an upper bound on waiting for a scrape, never a pause
# What Grafana puts in place of its variables before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def api(stack: ConsoleStack, path: str, **params: str) -> Any:
    url = f"{stack.prometheus_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as reply:
        answer = json.load(reply)
    assert answer["status"] == "success", answer
    return answer["data"]


def instant(stack: ConsoleStack, query: str) -> list[dict[str, Any]]:
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    result: list[dict[str, Any]] = api(stack, "query", query=query)["result"]
    return result


def database_counts(stack: ConsoleStack) -> dict[str, int]:
    database = stack.database()
    with database.transaction() as cursor:
        cursor.execute("SELECT status, COUNT(*) AS n FROM orders GROUP BY status")
        counts = {row["status"]: int(row["n"]) for row in cursor.fetchall()}
    database.close()
    return counts


def scraped_orders(stack: ConsoleStack) -> dict[str, int]:
    return {
        s["metric"]["status"]: int(float(s["value"][1]))
        for s in instant(stack, "max by (status) (order_saga_orders)")
    }


def scraped_as_stored(stack: ConsoleStack) -> dict[str, int]:
    """Orders by status once Prometheus' latest scrape shows what MySQL holds (every status)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        stored = database_counts(stack)
        seen = scraped_orders(stack)
        if seen == {status.value: stored.get(status.value, 0) for status in OrderStatus}:
            return seen
        assert time.monotonic() < deadline, f"Prometheus still shows {seen}, MySQL has {stored}"
        time.sleep(1)


def test_every_dashboard_query_runs_and_the_core_panels_have_data(console_stack: ConsoleStack) -> None:
    # Given Prometheus has scraped the edge since the demo's orders settled
    scraped_as_stored(console_stack)
    # When every query of the committed dashboard is run through Prometheus' HTTP API
    panels = dashboard.queries(json.loads(dashboard.OUTPUT.read_text()))
    results = {title: [instant(console_stack, expr) for expr in exprs] for title, exprs in panels.items()}
    # Then each parsed and ran (api() asserts success), and the core panels returned series
    empty = [title for title in dashboard.CORE_PANELS if not any(results[title])]
    assert empty == []
    assert len(results) == len(panels)


def test_the_saga_metrics_agree_with_the_database(console_stack: ConsoleStack) -> None:
    seen = scraped_as_stored(console_stack)
    assert seen["NEEDS_ATTENTION"] >= 1  # the unrelated flagged order
    finished = instant(console_stack, 'max(order_saga_create_to_final_seconds_count{outcome="CONFIRMED"})')
    assert int(float(finished[0]["value"][1])) >= 4  # the demo's confirmed orders at least
    refunds = instant(
        console_stack, 'max(order_saga_saga_steps_total{step="RefundPayment", status="REFUNDED"})'
    )
    assert int(float(refunds[0]["value"][1])) >= 2  # the lamp's loser and the cancelled order
    depth = console_stack.dlq_depth()
    deadline = time.monotonic() + WAIT_SECONDS
    while int(instant(console_stack, "max(order_saga_compensation_dlq_messages)")[0]["value"][1]) != depth:
        assert time.monotonic() < deadline, f"the DLQ depth never showed {depth}"
        time.sleep(1)
    [up] = instant(console_stack, "min(order_saga_saga_metrics_up)")
    assert up["value"][1] == "1"


def test_the_alert_rules_are_loaded_and_see_the_flagged_order(console_stack: ConsoleStack) -> None:
    groups = api(console_stack, "rules")["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"OrdersNeedAttention", "CompensationDlqNotEmpty", "EdgeServerErrors", "EdgeDown"} <= loaded
    deadline = time.monotonic() + WAIT_SECONDS
    while not any(
        a["labels"]["alertname"] == "OrdersNeedAttention" for a in api(console_stack, "alerts")["alerts"]
    ):
        assert time.monotonic() < deadline, "OrdersNeedAttention never became pending"
        time.sleep(1)
