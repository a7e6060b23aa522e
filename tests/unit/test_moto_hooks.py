"""The private moto hooks the local stack relies on. If one of these fails, moto moved them:
find the new place before upgrading the pin in constraints.txt."""

import inspect
import re
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from moto.awslambda.models import LambdaFunction
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from devstack import invoker
from devstack.moto_server import ScaledClock, scale_retry_waits

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"


def test_the_installed_moto_is_the_pinned_one() -> None:
    pinned = re.search(r"^moto==(\S+)$", CONSTRAINTS.read_text(), re.MULTILINE)
    assert pinned is not None, "moto must be pinned in constraints.txt"
    assert version("moto") == pinned.group(1)


def test_lambda_invocations_go_through_the_invoke_lambda_hook() -> None:
    # The hook exists with the signature the invoker replaces ...
    assert list(inspect.signature(LambdaFunction._invoke_lambda).parameters) == ["self", "event"]
    # ... and the Invoke API (used by Step Functions and by SQS event sources) calls it.
    assert "self._invoke_lambda(event=body)" in inspect.getsource(LambdaFunction.invoke)


def test_install_replaces_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", LambdaFunction._invoke_lambda)
    invoker.install(invoker.LocalInvoker(code_dirs={}))
    assert LambdaFunction._invoke_lambda.__module__ == "devstack.invoker"


def test_install_fails_loudly_when_the_hook_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(LambdaFunction, "_invoke_lambda")
    with pytest.raises(RuntimeError, match="_invoke_lambda is gone"):
        invoker.install(invoker.LocalInvoker(code_dirs={}))


def test_retry_waits_sleep_through_the_retrier_modules_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert retrier_decl.time is time  # type: ignore[attr-defined]
    assert "time.sleep(interval_seconds)" in inspect.getsource(retrier_decl.RetrierDecl._eval_body)
    monkeypatch.setattr(retrier_decl, "time", time)
    scale_retry_waits(0.5)
    assert isinstance(retrier_decl.time, ScaledClock)  # type: ignore[attr-defined]
    # Scaling twice would be a bug in the server's start-up: refused.
    with pytest.raises(RuntimeError, match="retrier"):
        scale_retry_waits(0.5)


def test_scaled_clock_shortens_sleeps_only(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    clock = ScaledClock(0.1)
    clock.sleep(20)
    assert slept == [pytest.approx(2.0)]
    assert clock.monotonic() == pytest.approx(time.monotonic(), abs=1)
