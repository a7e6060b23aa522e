"""The payment gateway server of the local stack, for the tests: started as its own process on a
free port with a store of its own, reached through the adapter the functions use (its books read
back), or through a raw client over urllib3 that sees every answer."""

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3

from devstack.gateway.process import PaymentGatewayServer
from order_saga.payment_gateway import HttpGateway
from tests.support.processes import free_port

# Far above what a test sends, so that only the rate tests meet the limit.
TEST_RATE = 100_000


def new_key(prefix: str = "order") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def charge_body(order_id: str, source: str = "tok_visa", amount: int = 1250) -> dict[str, Any]:
    return {"amount": amount, "currency": "eur", "source": source, "metadata": {"order_id": order_id}}


class GatewayClient:
    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self.api_key = api_key
        # No retries: each test sees every answer, and a dropped connection raises ProtocolError;
        # a connection kept for each of the most threads a test sends from.
        timeout = urllib3.Timeout(connect=5, read=30)
        self.http = urllib3.PoolManager(retries=False, maxsize=16, timeout=timeout)

    def headers(self, api_key: str | None, idempotency_key: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {api_key or self.api_key}", "Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def post(
        self,
        path: str,
        body: dict[str, Any],
        key: str | None,
        api_key: str | None = None,
        timeout: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        return self.http.request(
            "POST",
            self.url + path,
            body=json.dumps(body).encode(),
            headers=self.headers(api_key, key),
            timeout=timeout,
        )

    def get(
        self, path: str, fields: Mapping[str, object] | None = None, api_key: str | None = None
    ) -> urllib3.BaseHTTPResponse:
        query = {name: str(value) for name, value in (fields or {}).items()}
        return self.http.request("GET", self.url + path, fields=query, headers=self.headers(api_key, None))

    def charge(self, key: str, source: str = "tok_visa", amount: int = 1250) -> urllib3.BaseHTTPResponse:
        """A charge under the intent `key`, for the order of the same name."""
        return self.post("/v1/charges", charge_body(key, source, amount), key=key)

    def refund(self, charge: str, amount: int | None = None) -> urllib3.BaseHTTPResponse:
        body: dict[str, Any] = {"charge": charge, "metadata": {"order_id": "refunded-order"}}
        if amount is not None:
            body["amount"] = amount
        return self.post("/v1/refunds", body, key=f"refund-{charge}")

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call a control endpoint (no key); its JSON answer, which must be a 200."""
        reply = self.http.request(method, f"{self.url}/_control/{path}", body=json.dumps(body or {}).encode())
        assert reply.status == 200, reply.data
        return reply.json()

    def in_flight(self) -> list[str]:
        return list(self.control("GET", "in_flight")["data"])


@contextmanager
def gateway_server(folder: Path) -> Iterator[PaymentGatewayServer]:
    """The real gateway process on a free port, its state in `folder`, stopped at the end."""
    server = PaymentGatewayServer(free_port(), folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def adapter(server: PaymentGatewayServer, timeout: float = 10.0) -> HttpGateway:
    """The functions' adapter on `server`, with the key the server holds now."""
    return HttpGateway(server.url, lambda _fresh: server.api_key, timeout)


def books(gateway: HttpGateway, order_id: str) -> tuple[int, int]:
    """(charges, refunds) the gateway holds for the order: where the money is. (1, 0) is money
    kept, (1, 1) a charge refunded once, (0, 0) nothing taken; a second charge or refund of one
    order shows as a 2. A refund counts by the charge it names, whoever made it."""
    order = {"metadata[order_id]": order_id}
    charges = [c for c in gateway.listed("/v1/charges", order) if c["status"] == "succeeded"]
    refunds = [r for c in charges for r in gateway.listed("/v1/refunds", {"charge": c["id"]})]
    return len(charges), len(refunds)


def client_of(server: PaymentGatewayServer) -> GatewayClient:
    client = GatewayClient(server.url, server.api_key)
    client.control("POST", "rate", {"per_second": TEST_RATE})
    return client
