"""The payment gateway, reached over HTTP: one adapter, run by the functions, the watchdog and the
auditor alike, in AWS and on the local stack (whose gateway server keeps the same contract).

The contract is docs/payment-gateway.md. Every POST carries an idempotency key, so a retried step
never charges or refunds twice:
- a charge's key is the order id (its payment intent);
- a refund names its charge by id, under the key `refund-<charge id>`: a retry replays the answer
  about that very charge, which can never go stale;
- an intent with no charge is cancelled by its key (`cancel-<order id>`), after which a late
  charge under it is declined. A cancel of an intent that was charged answers with the charge,
  which is then refunded.

Answers map to the saga's errors here and nowhere else: a decline is an answer (the error's
`decline_code`); 409, 429, 5xx, timeouts, dropped connections and answers that are not JSON are
transient (`PaymentGatewayUnavailable`, retried by the state machine); a 401 re-reads the key's
secret once and tries again (the key was rotated); a charge the gateway does not know, or holds
less of than we would refund, is a `PaymentDisagreement`; any other refusal is a configuration
error.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import urllib3

from .errors import ConfigurationError, PaymentDisagreement, PaymentGatewayUnavailable
from .secrets import read_secret
from .settings import Settings, get_settings

# (fresh) -> the API key; `fresh` asks for the secret's current value, not a cached one.
KeySource = Callable[[bool], str]
PAGE_SIZE = 100


@dataclass(frozen=True)
class GatewayResult:
    """A charge's or a refund's answer: approved (with the object's id) or declined."""

    approved: bool
    reference: str | None
    response: dict[str, Any]

    @property
    def response_text(self) -> str:
        return json.dumps(self.response, sort_keys=True)

    @property
    def decline_code(self) -> str | None:
        if self.approved:
            return None
        return str(self.response.get("error", {}).get("decline_code") or "declined")


@dataclass(frozen=True)
class _Answer:
    status: int
    payload: dict[str, Any]

    @property
    def error(self) -> dict[str, Any]:
        return dict(self.payload.get("error") or {})


def cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


class HttpGateway:
    """The gateway's API over HTTP(S), with the API key as a Bearer token."""

    DECLINED = 402
    UNAUTHORIZED = 401
    TRANSIENT = frozenset({409, 429})

    def __init__(self, base_url: str, key: KeySource, timeout: float) -> None:
        if not base_url:
            raise ConfigurationError("the payment gateway needs PAYMENT_GATEWAY_URL")
        self._base_url = base_url.rstrip("/")
        self._key = key
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)

    # -- the saga's calls ---------------------------------------------------------------------

    def charge(self, *, order_id: str, amount: Decimal, currency: str, token: str) -> GatewayResult:
        body = {
            "amount": cents(amount),
            "currency": currency.lower(),
            "source": token,
            "metadata": {"order_id": order_id},
        }
        answer = self._call("POST", "/v1/charges", body, idempotency_key=order_id)
        if answer.status == self.DECLINED:
            return GatewayResult(False, None, answer.payload)
        self._refuse_unless_ok(answer)
        return GatewayResult(True, str(answer.payload["id"]), answer.payload)

    def cancel_intent(self, order_id: str) -> str | None:
        """Cancel the order's payment intent: None when no charge was made (and now none can be),
        else the id of the charge made under it, which is then refunded instead."""
        answer = self._call(
            "POST", f"/v1/payment_intents/{order_id}/cancel", {}, idempotency_key=f"cancel-{order_id}"
        )
        if answer.error.get("code") == "payment_intent_unexpected_state":
            return str(answer.error["payment_intent"]["charge"])
        self._refuse_unless_ok(answer)
        return None

    def refund(self, *, order_id: str, charge_id: str, amount: Decimal) -> GatewayResult:
        """Refund `amount` of the charge; a charge refunded already answers with that refund."""
        body = {"charge": charge_id, "amount": cents(amount), "metadata": {"order_id": order_id}}
        answer = self._call("POST", "/v1/refunds", body, idempotency_key=f"refund-{charge_id}")
        code = answer.error.get("code")
        if code == "charge_already_refunded":
            return GatewayResult(True, *self._refund_of(charge_id))
        if code in {"resource_missing", "amount_too_large"}:
            raise PaymentDisagreement(
                f"order {order_id}: the gateway cannot refund {cents(amount)} of charge {charge_id} "
                f"that our payments row records ({code})"
            )
        self._refuse_unless_ok(answer)
        return GatewayResult(True, str(answer.payload["id"]), answer.payload)

    def _refund_of(self, charge_id: str) -> tuple[str, dict[str, Any]]:
        refunds = list(self.listed("/v1/refunds", {"charge": charge_id}))
        if not refunds:
            raise PaymentDisagreement(f"the gateway says charge {charge_id} is refunded, and lists no refund")
        return str(refunds[0]["id"]), refunds[0]

    # -- what a reconciliation reads ------------------------------------------------------------

    def listed(self, path: str, filters: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint (`/v1/charges`, `/v1/refunds`) matching the filters,
        page after page."""
        fields = filters | {"limit": str(PAGE_SIZE)}
        while True:
            answer = self._call("GET", path, fields=fields)
            self._refuse_unless_ok(answer)
            yield from answer.payload["data"]
            if not answer.payload.get("has_more") or not answer.payload["data"]:
                return
            fields = fields | {"starting_after": str(answer.payload["data"][-1]["id"])}

    # -- HTTP -----------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> _Answer:
        answer = self._send(method, path, body, idempotency_key, fields, fresh_key=False)
        if answer.status == self.UNAUTHORIZED:  # the key was rotated: read its secret once more
            answer = self._send(method, path, body, idempotency_key, fields, fresh_key=True)
        if answer.status == self.UNAUTHORIZED:
            raise ConfigurationError(f"the payment gateway refuses our API key: {answer.error}")
        return answer

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        idempotency_key: str | None,
        fields: dict[str, str] | None,
        *,
        fresh_key: bool,
    ) -> _Answer:
        headers = {"Authorization": f"Bearer {self._key(fresh_key)}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self._http.request(
                method, f"{self._base_url}{path}", json=body, fields=fields, headers=headers
            )
        except urllib3.exceptions.HTTPError as exc:
            raise PaymentGatewayUnavailable(f"payment gateway unreachable: {exc}") from exc
        if response.status >= 500 or response.status in self.TRANSIENT:
            raise PaymentGatewayUnavailable(f"payment gateway answered {response.status} on {path}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise PaymentGatewayUnavailable(f"payment gateway sent no JSON ({response.status})") from exc
        if not isinstance(payload, dict):
            raise PaymentGatewayUnavailable(f"payment gateway sent no JSON object ({response.status})")
        return _Answer(response.status, payload)

    def _refuse_unless_ok(self, answer: _Answer) -> None:
        if answer.status >= 400:
            raise ConfigurationError(
                f"the payment gateway refused the request ({answer.status}): {answer.error}"
            )


def secret_key(settings: Settings) -> KeySource:
    """The API key from its Secrets Manager secret, cached like every secret (`fresh`: re-read)."""
    arn = settings.payment_gateway_secret_arn
    if not arn:
        raise ConfigurationError("the payment gateway needs PAYMENT_GATEWAY_SECRET_ARN (its API key)")

    def key(fresh: bool) -> str:
        return str(
            read_secret(
                arn,
                setting="PAYMENT_GATEWAY_SECRET_ARN",
                max_age=settings.secret_max_age,
                as_json=False,
                fresh=fresh,
            )
        )

    return key


def create_gateway(settings: Settings) -> HttpGateway:
    return HttpGateway(settings.payment_gateway_url, secret_key(settings), settings.payment_gateway_timeout)


@lru_cache(maxsize=1)
def get_gateway() -> HttpGateway:
    return create_gateway(get_settings())
