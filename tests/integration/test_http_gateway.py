"""The HTTP payment gateway adapter, against a small gateway fake served on 127.0.0.1.

The fake behaves as real gateways do where it matters here: it keys charges and refunds by the
Idempotency-Key header, answers 402 for a declined card and 503 while it is unavailable, refunds
a charge named by its idempotency key (or answers "nothing to refund" and voids the key) and
looks a charge up by its key (the adapter's contract, in HttpGateway's docstring).
"""

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from order_saga.errors import ConfigurationError, PaymentGatewayUnavailable
from order_saga.payment_gateway import HttpGateway
from tests.support.processes import free_port

API_KEY = "sk_test_local"


class FakeGateway(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), GatewayRequest)
        self.responses: dict[str, tuple[int, dict[str, Any]]] = {}
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.unavailable = False
        self.voided: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class GatewayRequest(BaseHTTPRequestHandler):
    server: FakeGateway

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        if self.server.unavailable:
            return self.answer(503, {"error": "maintenance"})
        if self.headers["Authorization"] != f"Bearer {API_KEY}":
            return self.answer(401, {"error": "bad api key"})
        key = self.headers["Idempotency-Key"]
        if key not in self.server.responses:
            self.server.responses[key] = self.decide(body)
        return self.answer(*self.server.responses[key])

    def decide(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.path == "/refunds":
            charge_key = body["charge_idempotency_key"]
            charged = self.server.responses.get(charge_key)
            if charged is None or charged[0] != 200:
                self.server.voided.add(charge_key)
                return 200, {"status": "nothing_to_refund"}
            return 200, {
                "id": f"re_{len(self.server.responses)}",
                "status": "succeeded",
                "charge": charged[1]["id"],
            }
        if self.headers["Idempotency-Key"] in self.server.voided:
            return 402, {"error": {"decline_code": "voided"}}
        if body["source"] == "tok_chargeDeclined":
            return 402, {"error": {"decline_code": "card_declined"}}
        return 200, {
            "id": f"ch_{len(self.server.responses)}",
            "status": "succeeded",
            "amount": body["amount"],
        }

    def answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    server = FakeGateway()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def charge(gateway: HttpGateway, token: str = "tok_visa") -> Any:
    return gateway.charge(order_id="order-1", amount=Decimal("19.98"), currency="EUR", token=token)


def test_a_repeated_charge_is_one_charge(fake: FakeGateway) -> None:
    gateway = HttpGateway(fake.url, API_KEY, timeout=2)
    first, second = charge(gateway), charge(gateway)
    assert first == second
    assert first.approved
    assert len(fake.responses) == 1
    path, headers, body = fake.requests[0]
    assert (path, headers["Idempotency-Key"], body["amount"], body["currency"]) == (
        "/charges",
        "order-1",
        1998,
        "eur",
    )


def test_a_declined_card_is_a_decision(fake: FakeGateway) -> None:
    result = charge(HttpGateway(fake.url, API_KEY, timeout=2), "tok_chargeDeclined")
    assert not result.approved
    assert result.reference is None
    assert result.response == {"error": {"decline_code": "card_declined"}}


def refund(gateway: HttpGateway) -> Any:
    return gateway.refund(order_id="order-1", amount=Decimal("19.98"), currency="EUR")


def test_a_refund_names_the_charge_by_its_key_and_has_its_own_key(fake: FakeGateway) -> None:
    gateway = HttpGateway(fake.url, API_KEY, timeout=2)
    charged = charge(gateway)
    first, second = refund(gateway), refund(gateway)
    assert first == second
    assert first.approved
    assert not first.nothing_to_refund
    assert first.response["charge"] == charged.reference
    assert sorted(fake.responses) == ["order-1", "refund-order-1"]
    path, headers, body = fake.requests[-1]
    assert (path, headers["Idempotency-Key"], body["charge_idempotency_key"]) == (
        "/refunds",
        "refund-order-1",
        "order-1",
    )


def test_a_refund_of_a_charge_never_made_moves_no_money_and_voids_the_key(fake: FakeGateway) -> None:
    # Given no charge under the key
    gateway = HttpGateway(fake.url, API_KEY, timeout=2)
    # When the refund comes first
    result = refund(gateway)
    # Then the gateway answers "nothing to refund", and a charge arriving later is declined
    assert result.nothing_to_refund
    assert not result.approved
    assert not charge(gateway).approved


def test_an_unavailable_gateway_is_transient(fake: FakeGateway) -> None:
    fake.unavailable = True
    with pytest.raises(PaymentGatewayUnavailable, match="503"):
        charge(HttpGateway(fake.url, API_KEY, timeout=2))


def test_an_unreachable_gateway_is_transient() -> None:
    # a port this run holds and nothing listens on (a released kernel-chosen one could be reused)
    with pytest.raises(PaymentGatewayUnavailable, match="unreachable"):
        charge(HttpGateway(f"http://127.0.0.1:{free_port()}", API_KEY, timeout=1))


def test_a_wrong_api_key_needs_a_person(fake: FakeGateway) -> None:
    with pytest.raises(ConfigurationError, match="401"):
        charge(HttpGateway(fake.url, "sk_wrong", timeout=2))


def test_the_http_gateway_needs_its_url() -> None:
    with pytest.raises(ConfigurationError, match="PAYMENT_GATEWAY_URL"):
        HttpGateway("", API_KEY, timeout=2)
