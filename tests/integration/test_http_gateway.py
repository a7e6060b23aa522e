"""The payment adapter against the local gateway server, over HTTP: how each answer of the
contract (docs/payment-gateway.md) reaches the saga."""

import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3

from devstack.gateway.process import PaymentGatewayServer
from order_saga.errors import ConfigurationError, PaymentGatewayUnavailable
from order_saga.payment_gateway import PAGE_SIZE, HttpGateway
from tests.support.gateway import books, gateway_faults
from tests.support.processes import free_port

AMOUNT = Decimal("12.50")


def charge(gateway: HttpGateway, order_id: str | None = None, token: str = "tok_visa") -> str:
    result = gateway.charge(
        order_id=order_id or str(uuid.uuid4()), amount=AMOUNT, currency="EUR", token=token
    )
    assert result.approved, result.response
    return str(result.reference)


def roll_key(server: PaymentGatewayServer, key: str) -> str:
    """A new API key, the old one expired at once (grace 0)."""
    reply = urllib3.request(
        "POST",
        f"{server.url}/v1/api_keys/roll",
        json={"grace_seconds": 0},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert reply.status == 200, reply.data
    return str(reply.json()["key"])


class KeySecret:
    """A key's secret as the adapter sees it: a cached value, and the current one on a fresh read."""

    def __init__(self, cached: str, current: str) -> None:
        self.cached, self.current = cached, current
        self.reads: list[bool] = []

    def __call__(self, fresh: bool) -> str:
        self.reads.append(fresh)
        return self.current if fresh else self.cached


def test_a_charge_repeated_under_its_key_is_the_first_charge(gateway: HttpGateway) -> None:
    order_id = str(uuid.uuid4())
    assert charge(gateway, order_id) == charge(gateway, order_id)
    assert books(gateway, order_id) == (1, 0)


def test_a_decline_carries_the_gateways_reason(gateway: HttpGateway) -> None:
    result = gateway.charge(
        order_id=str(uuid.uuid4()), amount=AMOUNT, currency="EUR", token="tok_chargeDeclinedExpiredCard"
    )
    assert (result.approved, result.reference, result.decline_code) == (False, None, "expired_card")


def test_a_rotated_key_is_read_again_once_and_the_call_goes_through(
    payment_gateway_server: PaymentGatewayServer,
) -> None:
    # Given the adapter's cached key was rotated away (expired at once), the secret holding the new one
    old = payment_gateway_server.api_key
    secret = KeySecret(cached=old, current=roll_key(payment_gateway_server, old))
    gateway = HttpGateway(payment_gateway_server.url, secret, timeout=10)
    # When it charges, then the 401 makes it read the secret afresh, once, and the charge succeeds
    charge(gateway)
    assert secret.reads == [False, True]


def test_a_key_the_gateway_refuses_even_afresh_is_a_configuration_error(
    payment_gateway_server: PaymentGatewayServer,
) -> None:
    secret = KeySecret(cached="sk_test_wrong", current="sk_test_still_wrong")
    gateway = HttpGateway(payment_gateway_server.url, secret, timeout=10)
    with pytest.raises(ConfigurationError, match="refuses our API key"):
        charge(gateway)
    assert secret.reads == [False, True]


@pytest.mark.parametrize(
    ("fault", "answer"),
    [
        ({"kind": "unavailable"}, "503"),
        ({"kind": "rate_limit"}, "429"),
        ({"kind": "in_flight"}, "409"),
        ({"kind": "lost_answer"}, "unreachable"),
        ({"kind": "slow", "delay_ms": 3000}, "unreachable"),  # past the adapter's timeout
    ],
)
def test_transient_answers_are_retried_by_the_saga_and_the_key_finds_the_charge_again(
    gateway: HttpGateway, payment_gateway_server: PaymentGatewayServer, fault: dict[str, object], answer: str
) -> None:
    # Given the gateway meets a fault on the next charge
    gateway_faults(payment_gateway_server, fault | {"count": 1, "path": "/v1/charges"})
    impatient = HttpGateway(payment_gateway_server.url, lambda _fresh: payment_gateway_server.api_key, 1.0)
    order_id = str(uuid.uuid4())
    # When the adapter charges, then the saga sees a transient error (its Retry covers it)
    with pytest.raises(PaymentGatewayUnavailable, match=answer):
        charge(impatient, order_id)
    # and the retry under the same key ends with exactly one charge
    charge(gateway, order_id)
    assert books(gateway, order_id) == (1, 0)


def test_an_unreachable_gateway_is_transient() -> None:
    gateway = HttpGateway(f"http://127.0.0.1:{free_port()}", lambda _fresh: "sk_test_local", timeout=1)
    with pytest.raises(PaymentGatewayUnavailable, match="unreachable"):
        charge(gateway)


class ProxyPage(BaseHTTPRequestHandler):
    """A proxy in front of the gateway answering with a page of its own (not the gateway's JSON)."""

    def do_POST(self) -> None:
        page = b"<html><body>Bad gateway</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), ProxyPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_answer_that_is_not_json_is_transient(proxy: str) -> None:
    gateway = HttpGateway(proxy, lambda _fresh: "sk_test_local", timeout=5)
    with pytest.raises(PaymentGatewayUnavailable, match="no JSON"):
        charge(gateway)


def test_a_list_is_read_across_its_pages(
    gateway: HttpGateway, payment_gateway_server: PaymentGatewayServer
) -> None:
    # Given more charges of one order than one page holds (made under keys of their own)
    order_id = str(uuid.uuid4())
    made = set()
    for n in range(PAGE_SIZE + 1):
        reply = urllib3.request(
            "POST",
            f"{payment_gateway_server.url}/v1/charges",
            json={"amount": 100, "currency": "eur", "source": "tok_visa", "metadata": {"order_id": order_id}},
            headers={
                "Authorization": f"Bearer {payment_gateway_server.api_key}",
                "Idempotency-Key": f"{order_id}-{n}",
            },
            timeout=10,
        )
        made.add(reply.json()["id"])
    # When the adapter lists them, then it reads every page, each charge once
    listed = [c["id"] for c in gateway.listed("/v1/charges", {"metadata[order_id]": order_id})]
    assert len(listed) == len(made) == PAGE_SIZE + 1
    assert set(listed) == made
