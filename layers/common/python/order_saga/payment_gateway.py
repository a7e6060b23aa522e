"""The payment gateway, behind one interface: a simulated gateway for local runs, an HTTP adapter.

Both are idempotent by key, as real gateways are: the order_id is the key of its charge and
`refund-<order_id>` the key of its refund, so a retried step never charges or refunds twice.

A refund names the charge by its idempotency key, never by a reference we may not have recorded
(the answer of a charge can be lost). The gateway holds the truth: it refunds the charge made
under that key, or answers "nothing to refund" and moves no money. That answer also voids the key:
a charge that arrives later under it is declined (`voided`), so a refund that overtook its charge
cannot leave the customer charged.

Simulated test tokens (like a real gateway's test cards):
- `tok_visa`: the charge succeeds.
- `tok_chargeDeclined`: the charge is always declined.
- `tok_unavailable_<N>`: the gateway is unavailable for the first N attempts of an order, then
  the charge succeeds (exercises the state machine's Retry).
- `tok_slow_<ms>`: the charge succeeds after <ms> milliseconds (exercises task timeouts).
- `tok_lostAnswer`: the charge lands in the ledger, but its answer is lost on every attempt (the
  connection drops: PaymentGatewayUnavailable). The same happens when the answer comes after the
  function's timeout; the local fault plan's `timeout` kind produces that one.
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

    @property
    def nothing_to_refund(self) -> bool:
        """A refund's answer: no charge was made under the key, and no money moved."""
        return self.response.get("status") == NOTHING_TO_REFUND


NOTHING_TO_REFUND = "nothing_to_refund"


class PaymentGateway(Protocol):
    def charge(self, *, order_id: str, amount: Decimal, currency: str, token: str) -> GatewayResult: ...

    def refund(self, *, order_id: str, amount: Decimal, currency: str) -> GatewayResult:
        """Refund the charge made under the key `order_id`; `nothing_to_refund` when there is none."""
        ...


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
    """A gateway that decides by token and keeps its ledger in Redis (it outlives one invocation).

    The ledger's writes are Lua scripts, atomic in Redis as a real gateway's are in its database:
    a charge and a refund by the same key cannot interleave."""

    PREFIX = "order-saga:simulated-gateway"
    # KEYS: charge, void. ARGV: the charge's record. The charge made earlier under the key wins;
    # a voided key refuses a new charge.
    _CHARGE = """
        local charged = redis.call('GET', KEYS[1])
        if charged then return charged end
        if redis.call('EXISTS', KEYS[2]) == 1 then return false end
        redis.call('SET', KEYS[1], ARGV[1])
        return ARGV[1]
    """
    # KEYS: charge, void. Voids the key, then answers the charge made under it (if any).
    _VOID = """
        redis.call('SET', KEYS[2], '1')
        return redis.call('GET', KEYS[1])
    """

    def __init__(self, client: "redis.Redis") -> None:
        self._redis = client

    def _keys(self, order_id: str) -> list[str]:
        return [f"{self.PREFIX}:charge:{order_id}", f"{self.PREFIX}:void:{order_id}"]

    def _once(self, key: str, result: GatewayResult) -> GatewayResult:
        """Record `result` under `key` unless a result is there already; return the recorded one."""
        with _ledger_errors():
            self._redis.set(f"{self.PREFIX}:{key}", json.dumps(_record(result)), nx=True)
            stored = json.loads(str(self._redis.get(f"{self.PREFIX}:{key}")))
        return _result(stored)

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
        lost = token == "tok_lostAnswer"  # noqa: S105 - a test token
        approved = token == "tok_visa" or bool(unavailable or slow or lost)  # noqa: S105 - a test token
        reference = f"ch_{uuid.uuid4().hex[:24]}" if approved else None
        response = {
            "id": reference,
            "status": "succeeded" if approved else "declined",
            "amount": _cents(amount),
            "currency": currency.lower(),
            "decline_code": None if approved else _decline_code(token),
        }
        if not approved:  # a decline is an answer, not a ledger entry
            return GatewayResult(False, None, response)
        with _ledger_errors():
            record = json.dumps(_record(GatewayResult(approved, reference, response)))
            stored = self._redis.eval(self._CHARGE, 2, *self._keys(order_id), record)
        if stored is None:
            return GatewayResult(
                False, None, response | {"id": None, "status": "declined", "decline_code": "voided"}
            )
        if lost:
            raise PaymentGatewayUnavailable("the connection dropped before the payment gateway answered")
        return _result(json.loads(stored))

    def refund(self, *, order_id: str, amount: Decimal, currency: str) -> GatewayResult:  # noqa: ARG002
        with _ledger_errors():
            charged = self._redis.eval(self._VOID, 2, *self._keys(order_id))
        if charged is None:
            return GatewayResult(False, None, {"status": NOTHING_TO_REFUND, "charge": None})
        charge = _result(json.loads(charged))
        refund_id = f"re_{uuid.uuid4().hex[:24]}"
        response = {
            "id": refund_id,
            "charge": charge.reference,
            "status": "succeeded",
            "amount": charge.response["amount"],
        }
        return self._once(f"refund:{order_id}", GatewayResult(True, refund_id, response))

    def charges(self, order_id: str) -> int:
        """How many distinct charges the ledger holds for the order (0 or 1)."""
        return int(self._redis.exists(f"{self.PREFIX}:charge:{order_id}"))

    def refunds(self, order_id: str) -> int:
        return int(self._redis.exists(f"{self.PREFIX}:refund:{order_id}"))


def _record(result: GatewayResult) -> dict[str, Any]:
    return {"approved": result.approved, "reference": result.reference, "response": result.response}


def _result(record: dict[str, Any]) -> GatewayResult:
    return GatewayResult(record["approved"], record["reference"], record["response"])


def _decline_code(token: str) -> str:
    return "card_declined" if token == "tok_chargeDeclined" else "invalid_token"  # noqa: S105


class HttpGateway:
    """A gateway reached over HTTPS with an API key; the idempotency key travels in a header.

    The contract this adapter expects (any gateway with payment intents offers it):
    - `POST /charges` with `Idempotency-Key: <order_id>`: 200 and the charge, 402 when declined
      (a key voided by a refund is declined too);
    - `POST /refunds` with `Idempotency-Key: refund-<order_id>` and the body naming the charge by
      its key (`charge_idempotency_key`): 200 and the refund, or 200 with `status:
      nothing_to_refund` when no charge was made under the key (the key is then voided).
    """

    DECLINED = 402

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        if not base_url:
            raise ConfigurationError("PAYMENT_GATEWAY=http needs PAYMENT_GATEWAY_URL")
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)

    def _post(self, path: str, idempotency_key: str, body: dict[str, Any]) -> GatewayResult:
        return self._answer(
            self._request("POST", path, json=body, headers={"Idempotency-Key": idempotency_key})
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        headers = {"Authorization": f"Bearer {self._api_key}"} | kwargs.pop("headers", {})
        try:
            return self._http.request(method, f"{self._base_url}{path}", headers=headers, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise PaymentGatewayUnavailable(f"payment gateway unreachable: {exc}") from exc

    def _answer(self, response: urllib3.BaseHTTPResponse) -> GatewayResult:
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
        if payload.get("status") == NOTHING_TO_REFUND:
            return GatewayResult(False, None, payload)
        return GatewayResult(True, str(payload["id"]), payload)

    def charge(self, *, order_id: str, amount: Decimal, currency: str, token: str) -> GatewayResult:
        body = {"amount": _cents(amount), "currency": currency.lower(), "source": token, "order_id": order_id}
        return self._post("/charges", order_id, body)

    def refund(self, *, order_id: str, amount: Decimal, currency: str) -> GatewayResult:  # noqa: ARG002
        body = {"charge_idempotency_key": order_id, "amount": _cents(amount)}
        return self._post("/refunds", f"refund-{order_id}", body)


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
