"""docs/deploy.md's rotation runbook says what the code does: the schedules, the secret max-age
the clients re-read within, and the ProxyAuthFailures alarm that waits out a rotation."""

import re

from cdk import constants as c
from cdk.capabilities.database import ROTATE_EVERY
from cdk.capabilities.monitoring import PERIOD, PROXY_AUTH_FAILURE_PERIODS
from cdk.capabilities.saga_function import SECRET_MAX_AGE
from order_saga.settings import Settings
from tests.support.synth import Synthesized

NUMBERS = {3: "three", 2: "two", 4: "four"}


def runbook() -> str:
    text = (c.REPO_ROOT / "docs" / "deploy.md").read_text()
    start = text.index("Passwords: ")
    return re.sub(r"\s+", " ", text[start : text.index("\n## ", start)])


def test_the_runbook_names_the_schedules_the_max_age_and_the_alarms_window() -> None:
    text = runbook()
    assert text.count(f"every {ROTATE_EVERY.to_days()} days") == 2
    assert "No schedule rotates when it is created" in text
    max_age = Settings.model_fields["secret_max_age"].default
    assert f"(`SECRET_MAX_AGE`, {max_age} s)" in text
    assert SECRET_MAX_AGE.to_seconds() == max_age
    assert "Parameters and Secrets extension as its `SECRETS_MANAGER_TTL`" in text
    assert f"wait for the secret max-age ({max_age} s)" in text
    minutes = int(PERIOD.to_minutes())
    assert f"in {NUMBERS[PROXY_AUTH_FAILURE_PERIODS]} {minutes}-minute periods in a row" in text
    # the window outlasts the max-age within which every warm client has read the new secret
    assert PROXY_AUTH_FAILURE_PERIODS * minutes * 60 > 2 * max_age
    assert "WRONGPASS" in text
    assert "1045" in text


def test_the_proxy_auth_alarm_is_the_runbooks(synthesized: Synthesized) -> None:
    alarms = synthesized.resources("Observability", "AWS::CloudWatch::Alarm").values()
    [alarm] = [
        a["Properties"]
        for a in alarms
        if a["Properties"].get("MetricName") == "ClientConnectionsSetupFailedAuth"
    ]
    assert alarm["EvaluationPeriods"] == PROXY_AUTH_FAILURE_PERIODS
    assert alarm["Period"] == PERIOD.to_seconds()
    assert alarm["Threshold"] == 1
