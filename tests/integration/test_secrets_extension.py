"""Secrets read through the Parameters and Secrets extension's HTTP interface: the local stack's
extension server answering from moto's Secrets Manager, and the reader the functions use."""

import json
from collections.abc import Iterator

import pytest
import urllib3
from mypy_boto3_secretsmanager import SecretsManagerClient

from devstack.secrets_extension import TOKEN_HEADER, SecretsExtension
from order_saga.errors import ConfigurationError
from order_saga.secrets import EXTENSION_PORT, read_secret
from tests.support.processes import free_port

TOKEN = "session-token"
TTL = 300.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def extension(
    secretsmanager: SecretsManagerClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretsExtension]:
    """The extension server on a free port, and the environment of a function that reads through it."""
    server = SecretsExtension(
        lambda secret_id: secretsmanager.get_secret_value(SecretId=secret_id),
        token=TOKEN,
        port=0,
        ttl_seconds=TTL,
        clock=clock,
    )
    server.start()
    monkeypatch.setenv(EXTENSION_PORT, str(server.port))
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    yield server
    server.stop()


def read(arn: str, *, as_json: bool = False, fresh: bool = False) -> object:
    return read_secret(arn, setting="TEST_SECRET_ARN", max_age=5, as_json=as_json, fresh=fresh)


def test_the_extension_answers_get_secret_values_shape(
    extension: SecretsExtension, secretsmanager: SecretsManagerClient
) -> None:
    arn = secretsmanager.create_secret(Name="orders/key", SecretString="k1")["ARN"]
    reply = urllib3.request(
        "GET",
        f"http://127.0.0.1:{extension.port}/secretsmanager/get",
        fields={"secretId": "orders/key"},
        headers={TOKEN_HEADER: TOKEN},
    )
    assert reply.status == 200
    answer = json.loads(reply.data)
    assert answer["ARN"] == arn
    assert answer["Name"] == "orders/key"
    assert answer["SecretString"] == "k1"
    assert "AWSCURRENT" in answer["VersionStages"]


def test_the_reader_gets_a_string_and_a_json_secret(
    extension: SecretsExtension, secretsmanager: SecretsManagerClient
) -> None:
    key = secretsmanager.create_secret(Name="orders/key", SecretString="k1")["ARN"]
    login = secretsmanager.create_secret(Name="orders/db", SecretString='{"username": "app"}')["ARN"]
    assert read(key) == "k1"
    assert read(login, as_json=True) == {"username": "app"}


def test_a_value_is_cached_for_the_ttl_and_refresh_now_reads_it_again(
    extension: SecretsExtension, secretsmanager: SecretsManagerClient, clock: Clock
) -> None:
    # Given a secret read once, then rotated
    arn = secretsmanager.create_secret(Name="orders/token", SecretString="first")["ARN"]
    assert read(arn) == "first"
    secretsmanager.put_secret_value(SecretId=arn, SecretString="second")
    # Then a read within the TTL is the cached value, a fresh one (refreshNow) the new one,
    assert read(arn) == "first"
    assert read(arn, fresh=True) == "second"
    # which the cache keeps from then on
    secretsmanager.put_secret_value(SecretId=arn, SecretString="third")
    assert read(arn) == "second"
    # and once the TTL is over, a read goes to Secrets Manager again
    clock.now += TTL
    assert read(arn) == "third"


def test_a_wrong_token_is_refused(
    extension: SecretsExtension, secretsmanager: SecretsManagerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = secretsmanager.create_secret(Name="orders/key", SecretString="k1")["ARN"]
    monkeypatch.setenv("AWS_SESSION_TOKEN", "another")
    with pytest.raises(
        ConfigurationError, match=r"TEST_SECRET_ARN.*answered 401.*X-Aws-Parameters-Secrets-Token"
    ):
        read(arn)


def test_an_unknown_secret_is_a_configuration_error_naming_the_setting(extension: SecretsExtension) -> None:
    with pytest.raises(
        ConfigurationError, match=r"TEST_SECRET_ARN=orders/none.*answered 4\d\d.*ResourceNotFoundException"
    ):
        read("orders/none")


def test_no_extension_listening_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXTENSION_PORT, str(free_port()))
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    with pytest.raises(
        ConfigurationError, match=r"cannot reach the Parameters and Secrets extension.*TEST_SECRET_ARN"
    ):
        read("orders/key")


def test_without_a_session_token_the_reader_says_so(
    extension: SecretsExtension, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    with pytest.raises(ConfigurationError, match=r"TEST_SECRET_ARN.*AWS_SESSION_TOKEN \(unset\)"):
        read("orders/key")
