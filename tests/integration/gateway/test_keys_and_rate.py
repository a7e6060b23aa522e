"""The local payment gateway's API keys (one account, rolled with a grace) and its rate limit."""

from collections.abc import Callable

from devstack.gateway.process import PaymentGatewayServer
from tests.support.gateway import TEST_RATE, GatewayClient, client_of, new_key


def roll(client: GatewayClient, api_key: str, grace_seconds: int) -> dict[str, object]:
    reply = client.post(
        "/v1/api_keys/roll", {"grace_seconds": grace_seconds}, key=new_key("roll"), api_key=api_key
    )
    assert reply.status == 200, reply.data
    return dict(reply.json())


def error_code(client: GatewayClient, api_key: str) -> str | None:
    """The error code of a read with the key (None: it was answered)."""
    reply = client.get("/v1/charges", api_key=api_key)
    return None if reply.status == 200 else str(reply.json()["error"]["code"])


def test_a_request_without_a_known_key_is_401(client: GatewayClient) -> None:
    for api_key in ("sk_test_unknown", " "):
        reply = client.get("/v1/charges", api_key=api_key)
        assert reply.status == 401
        assert reply.json()["error"]["type"] == "authentication_error"
        assert reply.json()["error"]["code"] == "invalid_api_key"
    assert client.http.request("GET", f"{client.url}/v1/charges").status == 401


def test_a_rolled_key_leaves_the_old_ones_working_until_their_grace_ends(
    fresh_gateway: Callable[[], PaymentGatewayServer],
) -> None:
    # Given a gateway and its first key
    server = fresh_gateway()
    client = client_of(server)
    first = server.api_key
    # When the key is rolled with an hour's grace
    rolled = roll(client, first, grace_seconds=3600)
    second = str(rolled["key"])
    # Then the new key works, the old one too, and the key file holds the new one
    assert rolled["object"] == "api_key"
    assert second.startswith("sk_test_")
    assert second != first
    assert error_code(client, first) is error_code(client, second) is None
    assert server.api_key == second
    # When the new key rolls again with no grace
    third = str(roll(client, second, grace_seconds=0)["key"])
    # Then every earlier key has expired, and the newest works
    assert error_code(client, first) == error_code(client, second) == "api_key_expired"
    assert error_code(client, third) is None
    assert server.api_key == third


def test_over_the_rate_a_request_is_429_with_retry_after_and_not_stored(client: GatewayClient) -> None:
    # Given a rate of one request per hundred seconds, and its one request spent
    client.control("POST", "rate", {"per_second": 0.01})
    assert client.charge(new_key()).status == 200
    # When a charge comes
    key = new_key()
    over = client.charge(key)
    # Then it is refused for now, saying when to come back
    assert over.status == 429
    assert (over.json()["error"]["type"], over.json()["error"]["code"]) == ("rate_limit_error", "rate_limit")
    assert 1 <= int(over.headers["Retry-After"]) <= 100
    # And once the rate allows it, the key executes afresh (the 429 was not stored)
    client.control("POST", "rate", {"per_second": TEST_RATE})
    after = client.charge(key)
    assert after.status == 200
    assert "Idempotent-Replayed" not in after.headers


def test_health_answers_without_a_key_or_a_rate(client: GatewayClient) -> None:
    client.control("POST", "rate", {"per_second": 0.01})
    replies = [client.http.request("GET", f"{client.url}/health") for _ in range(3)]
    assert [reply.status for reply in replies] == [200, 200, 200]
