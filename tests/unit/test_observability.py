"""X-Ray is loaded only where a handler is traced: Powertools' Tracer imports the SDK even when
tracing is off, which a cold start pays for. Each case runs in a new interpreter, since a Tracer
patches libraries process-wide."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
import handler
from order_saga.observability import tracing_enabled
print(tracing_enabled(), "aws_xray_sdk.core" in sys.modules)
"""


def import_reserve_stock(env: dict[str, str]) -> str:
    base = {"PYTHONPATH": str(ROOT / "layers" / "common" / "python"), "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT / "functions" / "inventory",
        env=base | env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_outside_lambda_a_handler_loads_no_xray() -> None:
    assert import_reserve_stock({}) == "False False"


@pytest.mark.parametrize("disabled", ["true", "1"])
def test_tracing_switched_off_in_lambda_loads_no_xray(disabled: str) -> None:
    env = {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": disabled}
    assert import_reserve_stock(env) == "False False"


def test_in_lambda_a_handler_is_traced() -> None:
    assert import_reserve_stock({"LAMBDA_TASK_ROOT": "/var/task"}) == "True True"
