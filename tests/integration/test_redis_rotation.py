"""The Redis AUTH token rotated under a warm client, on a redis-server of the test's own whose
password changes (CONFIG SET requirepass) while the client holds the old one."""

import subprocess
from collections.abc import Iterator

import pytest
import redis
from mypy_boto3_secretsmanager import SecretsManagerClient

from order_saga.cache import create_redis
from order_saga.settings import Settings
from tests.support.processes import free_port
from tests.support.waiting import Deadline


@pytest.fixture
def redis_server() -> Iterator[int]:
    """A private redis-server on a free port, its password `first`, stopped at the end."""
    port = free_port()
    options = {"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no", "requirepass": "first"}
    command = ["redis-server", *(part for key, value in options.items() for part in (f"--{key}", value))]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    admin = redis.Redis(port=port, password="first")

    def answers() -> bool:
        try:
            return bool(admin.ping())
        except redis.ConnectionError:
            return False

    Deadline(10).wait_for(answers, "the test's redis-server to answer")
    yield port
    server.terminate()
    server.wait(timeout=10)


def test_a_token_rotated_under_a_warm_client_is_read_again(
    settings: Settings, secretsmanager: SecretsManagerClient, redis_server: int
) -> None:
    # Given a warm client that logged in with the secret's token, cached for an hour
    arn = secretsmanager.create_secret(Name="orders/redis-token", SecretString="first")["ARN"]
    client = create_redis(
        settings.model_copy(
            update={
                "redis_url": f"redis://127.0.0.1:{redis_server}/0",
                "redis_auth_secret_arn": arn,
                "secret_max_age": 3600,
            }
        )
    )
    client.set("order:1", "RESERVED")
    warm = client.client_id()
    # When the token rotates (the server's password, then the secret) and the warm connection
    # is dropped (a failover, an idle timeout)
    admin = redis.Redis(port=redis_server, password="first")
    admin.config_set("requirepass", "second")
    secretsmanager.put_secret_value(SecretId=arn, SecretString="second")
    admin.client_kill_filter(_id=str(warm))
    # Then the next command's new connection, refused with the cached token (WRONGPASS), reads
    # the secret again and goes through
    assert client.get("order:1") == "RESERVED"
    assert client.client_id() != warm


def test_a_token_still_refused_after_reading_it_again_fails(
    settings: Settings, secretsmanager: SecretsManagerClient, redis_server: int
) -> None:
    arn = secretsmanager.create_secret(Name="orders/redis-wrong", SecretString="not-the-token")["ARN"]
    client = create_redis(
        settings.model_copy(
            update={"redis_url": f"redis://127.0.0.1:{redis_server}/0", "redis_auth_secret_arn": arn}
        )
    )
    with pytest.raises(redis.AuthenticationError):
        client.ping()
