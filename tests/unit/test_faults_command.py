"""`order-saga faults set|clear|show`: the command line of the fault plan."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from devstack import faults
from devstack.cli import main


@pytest.fixture
def plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "faults.json"
    monkeypatch.setattr(faults, "FAULTS_FILE", path)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["faults", *args])
    return result.exit_code, result.output


def test_set_show_clear(plan_file: Path) -> None:
    code, out = run("set", "ProcessPayment", "--error", "PaymentGatewayUnavailable", "--times", "2")
    assert (code, out) == (
        0,
        "added: ProcessPayment: error PaymentGatewayUnavailable: injected by the local fault plan, "
        "next 2 call(s)\n",
    )
    assert run("set", "ReserveStock", "--delay", "1.5", "--probability", "0.5")[0] == 0
    assert run("set", "ConfirmOrder", "--timeout", "--order-id", "o-1")[0] == 0
    assert run("set", "SendNotification", "--duplicate")[0] == 0
    code, out = run("show")
    assert code == 0
    assert out.splitlines()[1:] == [
        "ReserveStock: delay 1.5s, always, probability 0.5",
        "ConfirmOrder: timeout (the handler runs, its answer is lost), always for order o-1",
        "SendNotification: duplicate invocation, always",
    ]
    assert json.loads(plan_file.read_text())["faults"][0]["function"] == "ProcessPayment"
    assert run("clear", "ReserveStock") == (0, "removed 1 fault(s)\n")
    assert run("clear") == (0, "removed 3 fault(s)\n")
    assert run("show") == (0, "no faults: every invocation runs normally\n")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["set", "ProcessPayment"], "exactly one of"),
        (["set", "ProcessPayment", "--timeout", "--duplicate"], "exactly one of"),
        (["set", "--timeout"], "exactly one of"),
        (["set", "Nope", "--timeout"], "unknown function 'Nope'"),
        (["set", "ProcessPayment", "--timeout", "--probability", "0"], "probability"),
        (["clear", "Nope"], "unknown function"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(
    plan_file: Path, args: list[str], problem: str
) -> None:
    run("set", "ReserveStock", "--timeout")
    before = plan_file.read_text()
    code, out = run(*args)
    assert code == 1
    assert out.startswith("error: ")
    assert problem in out
    assert "Traceback" not in out
    assert plan_file.read_text() == before


def test_set_from_a_file_replaces_the_plan(plan_file: Path, tmp_path: Path) -> None:
    run("set", "ReserveStock", "--timeout")
    source = tmp_path / "plan.json"
    source.write_text(
        json.dumps(
            {"faults": [{"function": "RefundPayment", "kind": "error", "error_type": "DatabaseUnavailable"}]}
        )
    )
    assert run("set", "--file", str(source)) == (0, "plan replaced: 1 fault(s)\n")
    assert (
        run("show")[1]
        == "RefundPayment: error DatabaseUnavailable: injected by the local fault plan, always\n"
    )
    assert run("set", "ProcessPayment", "--file", str(source))[0] == 1
