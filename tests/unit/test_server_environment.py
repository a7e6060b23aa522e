"""The stack's servers start without the caller's AWS_ settings: they reach the stack's own
AWS endpoint with the stack's credentials, whatever the shell (or a benchmark) had set."""

from pathlib import Path

import pytest

from devstack import envfile
from devstack.gateway.process import PaymentGatewayServer
from devstack.stack import EdgeServer

STRAY = {
    "AWS_ENDPOINT_URL_SFN": "http://127.0.0.1:9/",  # a benchmark's endpoint, long gone
    "AWS_PROFILE": "production",
    "AWS_ACCESS_KEY_ID": "AKIA-not-the-stack",
}


@pytest.fixture
def stray_shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key, value in STRAY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    env_file = tmp_path / "env"
    env_file.write_text("AWS_ENDPOINT_URL=http://127.0.0.1:35000\nAWS_ACCESS_KEY_ID=local\n")
    monkeypatch.setattr(envfile, "ENV_FILE", env_file)
    return tmp_path


def test_a_server_inherits_no_aws_setting_but_keeps_the_rest(stray_shell: Path) -> None:
    env = PaymentGatewayServer(35100, stray_shell).process_env()
    assert not {key for key in env if key.startswith("AWS_")}
    assert env["LANG"] == "C.UTF-8"


def test_the_edge_gets_the_stacks_aws_settings_only(stray_shell: Path) -> None:
    env = EdgeServer(50051, 9464, stray_shell).process_env()
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:35000"
    assert env["AWS_ACCESS_KEY_ID"] == "local"
    assert "AWS_ENDPOINT_URL_SFN" not in env
    assert "AWS_PROFILE" not in env
