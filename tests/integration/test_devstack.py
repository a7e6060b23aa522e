"""The local services and the CLI, run as a newcomer runs them: as commands, in their own folder."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

import devstack.aws
import devstack.console.server
import devstack.prometheus
import devstack.services
import devstack.stack
from devstack.services import LocalServer, Redis
from order_saga.db import Database
from order_saga.settings import Settings
from tests.support.processes import cli, free_port, our_processes
from tests.support.stack import stack_environment


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """A second private stack: its own folder and ports, so the running servers are untouched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "REDIS_"))}
    env |= {
        "DEVSTACK_DIR": str(tmp_path / "stack"),
        "DEVSTACK_MYSQL_PORT": str(free_port()),
        "DEVSTACK_REDIS_PORT": str(free_port()),
    }
    return env


def test_services_lifecycle(isolated_env: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / "stack"
    try:
        # When the services are started twice
        first = cli("services", "up", env=isolated_env)
        second = cli("services", "up", env=isolated_env)
        # Then the second start is harmless and says so
        assert first.returncode == 0, first.stderr
        assert "started" in first.stdout
        assert second.returncode == 0, second.stderr
        assert second.stdout.count("already running") == 2
        # And the settings are written where scripts find them
        env_file = (state / "env").read_text()
        for key in (
            "MYSQL_HOST",
            "MYSQL_PORT",
            "MYSQL_USER",
            "MYSQL_PASSWORD",
            "MYSQL_DATABASE",
            "REDIS_URL",
        ):
            assert f"{key}=" in env_file
        assert cli("migrate", env=isolated_env).stdout.startswith("applied: 0001_initial_schema, ")
        assert cli("check", env=isolated_env).returncode == 0
        assert len(our_processes(isolated_env)) == 2
    finally:
        down = cli("services", "down", env=isolated_env)
    # Then stopping leaves no process of ours behind
    assert down.returncode == 0, down.stderr
    assert our_processes(isolated_env) == []
    assert cli("services", "status", env=isolated_env).returncode == 1


def test_a_server_another_process_started_is_stopped_without_waiting_to_kill_it(
    isolated_env: dict[str, str],
) -> None:
    # Given a Redis started by this process (as a test or a chaos campaign restarts one): once
    # stopped, it stays a zombie until this process collects it
    server = Redis(int(isolated_env["DEVSTACK_REDIS_PORT"]), Path(isolated_env["DEVSTACK_DIR"]))
    server.start()
    pid = server.pid()
    assert pid is not None
    try:
        # When another process stops the services
        down = cli("services", "down", env=isolated_env)
    finally:
        server.stop()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    # Then the server counts as stopped when it exits, not killed when the stop times out
    assert down.returncode == 0, down.stderr
    assert "redis: stopped" in down.stdout, down.stdout


def test_a_taken_port_is_refused_with_the_setting_to_change(
    isolated_env: dict[str, str], settings: Settings
) -> None:
    # Given Redis's port already taken (by the running private Redis)
    isolated_env["DEVSTACK_REDIS_PORT"] = settings.redis_url.rsplit(":", 1)[1].split("/")[0]
    try:
        result = cli("services", "up", env=isolated_env)
    finally:
        cli("services", "down", env=isolated_env)
    assert result.returncode == 1
    assert "port" in result.stderr
    assert "DEVSTACK_REDIS_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failed_start_shows_the_server_log(isolated_env: dict[str, str], tmp_path: Path) -> None:
    # Given a data folder that looks initialised but holds no system tables
    (tmp_path / "stack" / "mariadb" / "data" / "mysql").mkdir(parents=True)
    try:
        result = cli("services", "up", env=isolated_env)
    finally:
        cli("services", "down", env=isolated_env)
    # Then the start fails with the server's own words, and nothing is left running
    assert result.returncode == 1
    assert "mariadb did not start" in result.stderr
    assert "[ERROR]" in result.stderr
    assert "Traceback" not in result.stderr
    assert our_processes(isolated_env) == []


def test_a_wrong_password_is_one_clear_line(settings: Settings) -> None:
    env = os.environ | {"MYSQL_PASSWORD": "wrong", "MYSQL_DATABASE": settings.mysql_database}
    result = cli("migrate", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: MySQL at 127.0.0.1:")
    assert "check MYSQL_USER and MYSQL_PASSWORD" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_redis_is_one_clear_line(settings: Settings) -> None:
    env = os.environ | {"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_TIMEOUT": "0.5"}
    result = cli("check", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Redis at REDIS_URL=redis://127.0.0.1:1/0 is unreachable")
    assert len(result.stderr.strip().splitlines()) == 1


# Every module that defines one of the local stack's servers (imported: their classes register).
SERVER_MODULES = (
    devstack.services,
    devstack.aws,
    devstack.stack,
    devstack.console.server,
    devstack.prometheus,
)


def servers(cls: type[Any]) -> set[type[Any]]:
    """Every subclass of `cls`, at any depth."""
    found: set[type[Any]] = set()
    for direct in cls.__subclasses__():
        found |= {direct, *servers(direct)}
    return found


def test_a_stack_of_the_tests_own_gives_every_server_a_port_of_its_own(tmp_path: Path) -> None:
    # A server left on its default port would meet the one a running demo holds (`make demo`, then
    # `make test`): every port setting of the stack's servers is one the tests' stacks set
    assert all(module.__name__.startswith("devstack") for module in SERVER_MODULES)
    env = stack_environment(tmp_path / "stack")
    settings = {server.port_setting for server in servers(LocalServer)}
    assert {"DEVSTACK_GATEWAY_PORT", "DEVSTACK_CONSOLE_PORT"} <= settings  # the servers were found
    assert settings <= env.keys()
    assert "DEVSTACK_METRICS_PORT" in env  # the edge's second port


def test_the_step_functions_endpoint_says_how_many_executions_it_started_when_stopped() -> None:
    # Given: the endpoint in its own process, as the CreateOrder benchmark runs it
    endpoint = subprocess.Popen(
        [sys.executable, "-m", "devstack.stepfunctions_endpoint"], stdout=subprocess.PIPE, text=True
    )
    assert endpoint.stdout is not None
    client = boto3.client(
        "stepfunctions",
        endpoint_url=endpoint.stdout.readline().strip(),
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:OrderSaga"
    # When: it starts two executions and is stopped with SIGTERM
    for name in ("one", "two"):
        client.start_execution(stateMachineArn=machine, name=name, input="{}")
    endpoint.terminate()
    # Then: its last word is the count
    assert endpoint.communicate(timeout=10)[0].strip() == "started 2"
    assert endpoint.returncode == 0


def test_the_local_mysql_keeps_time_in_utc_as_rds_does(database: Database) -> None:
    """The edge writes an order's timestamps as naive UTC, as RDS's MySQL (UTC by default) reads
    them; the local server runs in UTC whatever the machine's own zone."""
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT @@global.time_zone AS zone, TIMESTAMPDIFF(SECOND, NOW(), UTC_TIMESTAMP()) AS skew"
        )
        row = cursor.fetchone()
    assert row == {"zone": "+00:00", "skew": 0}
