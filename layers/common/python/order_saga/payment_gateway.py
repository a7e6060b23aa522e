"""The payment gateway, behind one interface: a simulated gateway for local runs, an HTTP adapter.

Both are idempotent by key, as real gateways are: the order_id is the key of its charge and
`refund-<order_id>` the key of its refund, so a retried step never charges or refunds twice.

Simulated test tokens (like a real gateway's test cards):
- `tok_visa`: the charge succeeds.
- `tok_chargeDeclined`: the charge is always declined.
- `tok_unavailable_<N>`: the gateway is unavailable for the first N attempts of an order, then
  the charge succeeds (exercises the state machine's Retry).
- `tok_slow_<ms>`: the charge succeeds after <ms> milliseconds (exercises task timeouts).
Any other token is declined as invalid.
"""

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

import redis
import urllib3

from .cache import get_redis
from .errors import ConfigurationError, PaymentGatewayUnavailable
from .secrets import read_secret
from .settings import Settings, get_settings


@dataclass(frozen=True)
class GatewayResult:
    approved: bool
    reference: str | None
    response: dict[str, Any]

    @property
    def response_text(self) -> str:
        return json.dumps(self.response, sort_keys=True)


class PaymentGateway(Protocol):
    def charge(self, *, order_id: str, amount: Decimal, currency: str, token: str) -> GatewayResult: ...

    def refund(self, *, order_id: str, reference: str, amount: Decimal, currency: str) -> GatewayResult: ...


@contextmanager
def _ledger_errors() -> Iterator[None]:
    """The simulated gateway's ledger is its server: when Redis is down, the gateway is."""
    try:
        yield
    except redis.RedisError as exc:
        raise PaymentGatewayUnavailable(f"simulated payment gateway unavailable: {exc}") from exc


def _cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


class SimulatedGateway:
    """A gateway that decides by token and keeps its ledger in Redis (it outlives one invocation)."""

    PREFIX = "order-saga:simulated-gateway"

    def __init__(self, client: "redis.Redis") -> None:
        self._redis = client

    def _once(self, key: str, result: GatewayResult) -> GatewayResult:
        """Record `result` under `key` unless a result is there already; return the recorded one."""
        record = {"approved": result.approved, "reference": result.reference, "response": result.response}
        with _ledger_errors():
            self._redis.set(f"{self.PREFIX}:{key}", json.dumps(record), nx=True)
            stored = json.loads(str(self._redis.get(f"{self.PREFIX}:{key}")))
        return GatewayResult(stored["approved"], stored["reference"], stored["response"])

    def charge(self, *, order_id: str, amount: Decimal, currency: str, token: str) -> GatewayResult:
        unavailable = re.fullmatch(r"tok_unavailable_(\d+)", token)
        if unavailable:
            with _ledger_errors():
                attempt = int(self._redis.incr(f"{self.PREFIX}:attempts:{order_id}"))
            if attempt <= int(unavailable.group(1)):
                raise PaymentGatewayUnavailable(f"payment gateway unavailable (attempt {attempt})")
        slow = re.fullmatch(r"tok_slow_(\d+)", token)
        if slow:
            time.sleep(int(slow.group(1)) / 1000)
        approved = token == "tok_visa" or bool(unavailable or slow)  # noqa: S105 - a test token
        reference = f"ch_{uuid.uuid4().hex[:24]}" if approved else None
        response = {
            "id": reference,
            "status": "succeeded" if approved else "declined",
            "amount": _cents(amount),
            "currency": currency.lower(),
            "decline_code": None if approved else _decline_code(token),
        }
        return self._once(f"charge:{order_id}", GatewayResult(approved, reference, response))

    def refund(self, *, order_id: str, reference: str, amount: Decimal, currency: str) -> GatewayResult:  # noqa: ARG002
        refund_id = f"re_{uuid.uuid4().hex[:24]}"
        response = {"id": refund_id, "charge": reference, "status": "succeeded", "amount": _cents(amount)}
        return self._once(f"refund:{order_id}", GatewayResult(True, refund_id, response))

    def charges(self, order_id: str) -> int:
        """How many distinct charges the ledger holds for the order (0 or 1)."""
        return int(self._redis.exists(f"{self.PREFIX}:charge:{order_id}"))

    def refunds(self, order_id: str) -> int:
        return int(self._redis.exists(f"{self.PREFIX}:refund:{order_id}"))


def _decline_code(token: str) -> str:
    return "card_declined" if token == "tok_chargeDeclined" else "invalid_token"  # noqa: S105


class HttpGateway:
    """A gateway reached over HTTPS with an API key; the idempotency key travels in a header."""

    DECLINED = 402

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        if not base_url:
            raise ConfigurationError("PAYMENT_GATEWAY=http needs PAYMENT_GATEWAY_URL")
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)

    def _post(self, path: str, idempotency_key: str, body: dict[str, Any]) -> GatewayResult:
        try:
            response = self._http.request(
                "POST",
                f"{self._base_url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {self._api_key}", "Idempotency-Key": idempotency_key},
            )
        except urllib3.exceptions.HTTPError as exc:
            raise PaymentGatewayUnavailable(f"payment gateway unreachable: {exc}") from exc
        if response.status >= 500 or response.status == 429:
            raise PaymentGatewayUnavailable(f"payment gateway answered {response.status}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise PaymentGatewayUnavailable(f"payment gateway sent no JSON ({response.status})") from exc
        if response.status == self.DECLINED:
            return GatewayResult(False, None, payload)
        if response.status >= 400:
            raise ConfigurationError(f"payment gateway refused the request ({response.status}): {payload}")
        return GatewayResult(True, str(payload["id"]), payload)

    def charge(self, *, order_id: str, amount: Decimal, currency: str, token: str) -> GatewayResult:
        body = {"amount": _cents(amount), "currency": currency.lower(), "source": token, "order_id": order_id}
        return self._post("/charges", order_id, body)

    def refund(self, *, order_id: str, reference: str, amount: Decimal, currency: str) -> GatewayResult:  # noqa: ARG002
        return self._post("/refunds", f"refund-{order_id}", {"charge": reference, "amount": _cents(amount)})


def create_gateway(settings: Settings) -> PaymentGateway:
    if settings.payment_gateway == "simulated":
        return SimulatedGateway(get_redis())
    api_key = ""
    if settings.payment_gateway_secret_arn:
        api_key = read_secret(
            settings.payment_gateway_secret_arn,
            setting="PAYMENT_GATEWAY_SECRET_ARN",
            max_age=settings.secret_max_age,
            as_json=False,
        )
    return HttpGateway(settings.payment_gateway_url, api_key, settings.payment_gateway_timeout)


@lru_cache(maxsize=1)
def get_gateway() -> PaymentGateway:
    return create_gateway(get_settings())
