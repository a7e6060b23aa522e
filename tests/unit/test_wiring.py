"""What the local stack gives each function, derived from its definition (no server needed)."""

import os
import subprocess
import sys
from pathlib import Path

from devstack.aws import MotoServer
from devstack.aws_settings import AwsStackSettings
from devstack.invoker import SESSION_TOKEN, base_environment
from devstack.wiring import GatewayAccess, Wiring, function_environment
from order_saga.functions import FUNCTIONS, function
from order_saga.settings import Settings

DATABASE = Settings(mysql_host="127.0.0.1", mysql_port=3307, mysql_password="pw", redis_url="redis://r:1/2")
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"
GATEWAY_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gateway"
GATEWAY = GatewayAccess("http://127.0.0.1:35100", "sk_test_local")
MADE = {
    "MYSQL_SECRET_ARN": SECRET,
    "PAYMENT_GATEWAY_URL": GATEWAY.url,
    "PAYMENT_GATEWAY_SECRET_ARN": GATEWAY_SECRET,
}


def environment(name: str) -> dict[str, str]:
    return function_environment(function(name), AwsStackSettings(), DATABASE, MADE)


def test_a_step_reaches_the_database_through_the_secret_and_redis_by_url() -> None:
    env = environment("ProcessPayment")
    assert env["MYSQL_SECRET_ARN"] == SECRET
    assert (env["MYSQL_HOST"], env["MYSQL_PORT"]) == ("127.0.0.1", "3307")
    assert env["REDIS_URL"] == "redis://r:1/2"
    # the gateway server's URL, and its key by its secret (never the key itself)
    assert (env["PAYMENT_GATEWAY_URL"], env["PAYMENT_GATEWAY_SECRET_ARN"]) == (GATEWAY.url, GATEWAY_SECRET)
    assert env["POWERTOOLS_SERVICE_NAME"] == "payment"
    assert "EMAIL_SENDER" not in env


def test_no_function_gets_the_password_and_only_the_mailer_gets_the_sender() -> None:
    for spec in FUNCTIONS:
        env = environment(spec.name)
        assert not {"pw", GATEWAY.api_key} & set(env.values()), spec.name
        assert ("EMAIL_SENDER" in env) == (spec.name == "SendNotification"), spec.name
        # the payment steps, the watchdog that refunds what an execution left behind, and the
        # reconciliation that reads the gateway's ledger
        assert ("PAYMENT_GATEWAY_URL" in env) == (
            spec.service in {"payment", "watchdog", "reconciliation"}
        ), spec.name


def test_only_the_watchdog_gets_the_state_machines_and_the_saga_queues() -> None:
    control = {"ORDER_CANCELLATION_STATE_MACHINE_ARN": "arn:sm", "COMPENSATION_DLQ_URL": "q"}
    for spec in FUNCTIONS:
        env = function_environment(spec, AwsStackSettings(), DATABASE, MADE, control)
        assert (control.items() <= env.items()) == (spec.name == "SagaWatchdog"), spec.name


def test_aws_down_removes_every_key_aws_up_writes(tmp_path: Path) -> None:
    # Given a state folder whose env file holds what `aws up` writes (the server's settings and
    # the wiring's) beside another part's setting
    machines = {"ORDER_SAGA_STATE_MACHINE_ARN": "a", "ORDER_CANCELLATION_STATE_MACHINE_ARN": "b"}
    written = (
        MotoServer(AwsStackSettings()).env()
        | Wiring({}, machines, {}, "q", "d", "c", "s", GATEWAY, "g").env()
    )
    (tmp_path / "env").write_text("".join(f"{k}={v}\n" for k, v in written.items()) + "MYSQL_HOST=kept\n")
    # When `order-saga aws down` runs on that folder (no moto of its own is running)
    down = subprocess.run(
        [sys.executable, "-m", "devstack", "aws", "down"],
        env=os.environ | {"DEVSTACK_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    # Then every key of the AWS stack is gone, and only the other part's setting is left
    assert down.returncode == 0, down.stderr
    assert "moto: not running" in down.stdout
    assert (tmp_path / "env").read_text() == "MYSQL_HOST=kept\n"


def test_every_local_aws_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [f"DEVSTACK_{name.upper()}" for name in AwsStackSettings.model_fields]
    assert [name for name in missing if f"| `{name}` |" not in readme] == []


def test_the_local_functions_read_their_secrets_through_the_stacks_extension() -> None:
    env = base_environment("http://127.0.0.1:1", "us-east-1", 45273)
    assert env["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] == "45273"
    assert env["AWS_SESSION_TOKEN"] == SESSION_TOKEN  # what the extension checks the token against
