"""The monitoring files are checked by the tools that run them: promtool for the Prometheus config
and alert rules (the alerts' own unit tests included), and the dashboard is what its code builds."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cdk import constants as c
from observability import dashboard

OBSERVABILITY = c.REPO_ROOT / "observability"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: run `make test`, which installs Debian's prometheus package")
    return subprocess.run([binary, *args], cwd=OBSERVABILITY, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "command",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts.test.yml"),
    ],
    ids=["config", "rules", "alert-tests"],
)
def test_promtool_accepts_the_monitoring_files(command: tuple[str, ...]) -> None:
    checked = promtool(*command)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_the_alert_tests_would_catch_an_alert_that_never_fires(tmp_path: Path) -> None:
    # Given the rules with the NEEDS_ATTENTION threshold raised out of reach
    rules = (
        (OBSERVABILITY / "alerts.yml")
        .read_text()
        .replace(
            'max(order_saga_orders{status="NEEDS_ATTENTION"}) > 0',
            'max(order_saga_orders{status="NEEDS_ATTENTION"}) > 99',
        )
    )
    (tmp_path / "alerts.yml").write_text(rules)
    shutil.copy(OBSERVABILITY / "alerts.test.yml", tmp_path / "alerts.test.yml")
    # When the alerts' unit tests run against them, Then they fail
    broken = subprocess.run(
        [str(shutil.which("promtool")), "test", "rules", "alerts.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert broken.returncode != 0
    assert "OrdersNeedAttention" in broken.stdout + broken.stderr


def test_the_committed_dashboard_is_the_one_the_code_builds() -> None:
    assert dashboard.OUTPUT.read_text() == dashboard.render(), "run `make dashboard` and commit the result"


def test_every_dashboard_panel_has_queries_on_the_datasource_variable() -> None:
    document = json.loads(dashboard.render())
    found = dashboard.queries(document)
    assert set(dashboard.CORE_PANELS) <= found.keys()
    assert all(
        target["datasource"] == dashboard.DATASOURCE
        for p in document["panels"]
        for target in p.get("targets", [])
    )
