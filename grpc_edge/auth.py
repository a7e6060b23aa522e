"""Access tokens and who an RPC acts for (docs/architecture.md, identity).

Tokens are Cognito access tokens (RS256 only, `token_use` = `access`), verified with the keys of
the issuer's JWKS: Cognito's in AWS, the local token issuer's locally. Issuer, expiry, subject and
`client_id` are required. Scopes count only as this API's resource server writes them
(`orders-api/orders:read`): that prefix is the audience check, since Cognito's access tokens carry
no `aud` and only the clients the pool grants this resource server's scopes get them.

Two kinds of caller:
- a customer, whose token's `sub` is the customer; the RPC acts for that customer;
- a service (a client-credentials token: `sub` is its own `client_id`), which acts for the
  customer it names in the `x-customer-id` metadata, and only with the scope `orders:act-as`.

Keys expire from the cache after `key_lifetime_seconds`, so a key withdrawn from the JWKS stops
verifying within that time; a token with an unknown `kid` makes the verifier fetch the JWKS again
(the issuer rotated its keys), at most once per `refetch_seconds`, so made-up kids cannot turn
every request into a fetch. A JWKS that cannot be reached is UNAVAILABLE (retry), not
UNAUTHENTICATED.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jwt

from order_saga.errors import (
    FieldViolation,
    InvalidRequest,
    NotAuthenticated,
    PermissionDenied,
    TransientDependencyError,
)
from order_saga.manifest import RESOURCE_SERVER, SCOPE_ACT_AS, SCOPE_READ, SCOPE_WRITE
from order_saga.models import Actor
from order_saga.order_requests import customer_id_violation

ALGORITHM = "RS256"  # pinned: a token naming another algorithm (or "none") is refused
LEEWAY_SECONDS = 30
CUSTOMER_METADATA = "x-customer-id"
SCOPES = {
    "CreateOrder": SCOPE_WRITE,
    "CancelOrder": SCOPE_WRITE,
    "GetOrder": SCOPE_READ,
    "ListOrders": SCOPE_READ,
    "WatchOrder": SCOPE_READ,
}


@dataclass(frozen=True)
class Caller:
    """A verified access token: its subject, its app client, and this API's scopes it grants
    (without the resource server's prefix)."""

    subject: str
    client_id: str
    scopes: frozenset[str]

    @property
    def is_service(self) -> bool:
        """A client-credentials token: Cognito makes its `sub` the client's own id."""
        return self.subject == self.client_id


_actor: ContextVar[Actor | None] = ContextVar("actor", default=None)


def current_actor() -> Actor:
    """Whom the RPC being served acts for (set by the auth interceptor)."""
    actor = _actor.get()
    if actor is None:
        raise NotAuthenticated("no authenticated caller")
    return actor


def granted_scopes(claim: object) -> frozenset[str]:
    """This API's scopes in a token's `scope` claim: exactly `<resource server>/<scope>`."""
    prefix = f"{RESOURCE_SERVER}/"
    names = claim.split() if isinstance(claim, str) else []
    return frozenset(name.removeprefix(prefix) for name in names if name.startswith(prefix))


class TokenVerifier:
    """Verifies access tokens, and remembers the verified ones (up to `cache_size`): a client sends
    the same token with every call, and checking an RS256 signature is most of an RPC's
    authentication cost. A remembered token is trusted neither past its `exp` nor longer than a
    key stays cached (its key may have been withdrawn since)."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        refetch_seconds: float = 30.0,
        key_lifetime_seconds: float = 300.0,
    ) -> None:
        self.issuer = issuer
        # cache_keys stays off: PyJWT's per-kid key cache never expires, so a withdrawn key would
        # verify for as long as the process lives. The JWKS document itself expires after its lifespan.
        self._jwks = jwt.PyJWKClient(
            jwks_url, cache_keys=False, lifespan=key_lifetime_seconds, cooldown_duration=refetch_seconds
        )
        self._key_lifetime = key_lifetime_seconds
        self._cache_size = cache_size
        self._clock = clock
        self._verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()  # token -> (who, until)
        self._lock = threading.Lock()

    def verify(self, token: str) -> Caller:
        with self._lock:
            remembered = self._verified.get(token)
        if remembered is not None and self._clock() < remembered[1]:
            return remembered[0]
        caller, expires = self._decode(token)
        if self._cache_size:
            until = min(expires, self._clock() + self._key_lifetime)
            with self._lock:
                self._verified[token] = (caller, until)
                while len(self._verified) > self._cache_size:
                    self._verified.popitem(last=False)  # the oldest first
        return caller

    def _decode(self, token: str) -> tuple[Caller, float]:
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub", "client_id", "token_use"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise NotAuthenticated(f"invalid access token: {exc}") from exc
        if claims["token_use"] != "access":  # noqa: S105 - a claim value, not a password
            raise NotAuthenticated("invalid access token: send an access token, not an ID token")
        subject, client_id = claims["sub"], claims["client_id"]
        if not isinstance(subject, str) or customer_id_violation(subject, "sub") is not None:
            raise NotAuthenticated("invalid access token: its subject is not a customer or client id")
        if not isinstance(client_id, str) or not client_id:
            raise NotAuthenticated("invalid access token: no client_id")
        caller = Caller(subject, client_id, granted_scopes(claims.get("scope")))
        # The remembered token expires with the token itself, never later (no leeway here).
        return caller, float(claims["exp"])

    def _key(self, token: str) -> Any:
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise TransientDependencyError(f"the token issuer's JWKS is unreachable: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise NotAuthenticated(f"invalid access token: {exc}") from exc


def metadata_values(metadata: tuple[tuple[str, str | bytes], ...], key: str) -> list[str | bytes]:
    return [value for name, value in metadata if name == key]


def authenticate(verifier: TokenVerifier, metadata: tuple[tuple[str, str | bytes], ...], rpc: str) -> Actor:
    """Whom the RPC acts for, once the token's caller is verified and allowed to call `rpc`."""
    values = metadata_values(metadata, "authorization")
    if not values or not isinstance(values[0], str) or not values[0].startswith("Bearer "):
        raise NotAuthenticated("missing access token: send `authorization: Bearer <token>`")
    caller = verifier.verify(values[0].removeprefix("Bearer ").strip())
    needed = SCOPES[rpc]
    if needed not in caller.scopes:
        raise PermissionDenied(f"{rpc} needs the scope {RESOURCE_SERVER}/{needed}")
    return Actor(acting_for(caller, metadata_values(metadata, CUSTOMER_METADATA)), caller.client_id)


def acting_for(caller: Caller, named: list[str | bytes]) -> str:
    """The customer the RPC acts for: the customer's own token's subject, or the customer a
    service names in `x-customer-id` (only with the act-as scope)."""
    if len(named) > 1 or any(not isinstance(value, str) for value in named):
        raise InvalidRequest([FieldViolation(CUSTOMER_METADATA, "name one customer, once, as text")])
    customer = str(named[0]) if named else None
    if not caller.is_service:
        if customer is not None and customer != caller.subject:
            raise PermissionDenied("a customer's token acts for its own customer only")
        return caller.subject
    if SCOPE_ACT_AS not in caller.scopes:
        raise PermissionDenied(
            f"a service acts for a customer, and only with the scope {RESOURCE_SERVER}/{SCOPE_ACT_AS}"
        )
    if customer is None:
        raise InvalidRequest([FieldViolation(CUSTOMER_METADATA, "name the customer this service acts for")])
    violation = customer_id_violation(customer, CUSTOMER_METADATA)
    if violation is not None:
        raise InvalidRequest([violation])
    return customer


def bind_actor(actor: Actor | None) -> object:
    return _actor.set(actor)


def unbind_actor(token: object) -> None:
    _actor.reset(token)  # type: ignore[arg-type]
