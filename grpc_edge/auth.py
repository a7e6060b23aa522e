"""Access tokens: JWT verification (RS256 only) and the scopes each RPC needs.

In AWS the keys come from the issuer's JWKS (Cognito); locally from the dev key's public half
(`order-saga token` mints tokens with the private half). A token whose `kid` the cached JWKS does
not hold makes the verifier fetch the JWKS again (the issuer rotated its keys), at most once per
`refetch_seconds`, so made-up kids cannot turn every request into a fetch; a JWKS that cannot be
reached is UNAVAILABLE (retry), not UNAUTHENTICATED. Issuer, audience, expiry and subject
are required. Cognito's access tokens carry `client_id` instead of `aud`; either must match.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from order_saga.errors import ConfigurationError, NotAuthenticated, PermissionDenied, TransientDependencyError
from order_saga.manifest import SCOPE_READ, SCOPE_WRITE

ALGORITHM = "RS256"  # pinned: a token naming another algorithm (or "none") is refused
LEEWAY_SECONDS = 30
MAX_SUBJECT = 128  # orders.user_id: a longer subject could never own an order
READ_SCOPE = SCOPE_READ
WRITE_SCOPE = SCOPE_WRITE
SCOPES = {
    "CreateOrder": WRITE_SCOPE,
    "CancelOrder": WRITE_SCOPE,
    "GetOrder": READ_SCOPE,
    "ListOrders": READ_SCOPE,
    "WatchOrder": READ_SCOPE,
}


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        """Cognito prefixes custom scopes with the resource server (`orders-api/orders:read`)."""
        return any(granted == scope or granted.endswith(f"/{scope}") for granted in self.scopes)


_principal: ContextVar[Principal | None] = ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The caller of the RPC being served (set by the auth interceptor)."""
    principal = _principal.get()
    if principal is None:
        raise NotAuthenticated("no authenticated caller")
    return principal


class TokenVerifier:
    """Verifies access tokens, and remembers the verified ones (up to `cache_size`) until they
    expire: a client sends the same token with every call, and checking an RS256 signature is
    most of an RPC's authentication cost. A remembered token is never trusted past its `exp`."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        public_key_file: Path | None = None,
        jwks_url: str | None = None,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        refetch_seconds: float = 30.0,
    ) -> None:
        if jwks_url is None and public_key_file is None:
            raise ConfigurationError("set JWT_JWKS_URL or JWT_PUBLIC_KEY_FILE: the edge verifies every token")
        self.issuer = issuer
        self.audience = audience
        self._jwks = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=3600, cooldown_duration=refetch_seconds)
            if jwks_url
            else None
        )
        self._public_key = public_key_file.read_text() if public_key_file and not jwks_url else None
        self._cache_size = cache_size
        self._clock = clock
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()  # token -> (who, exp)
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        with self._lock:
            remembered = self._verified.get(token)
        if remembered is not None and self._clock() < remembered[1]:
            return remembered[0]
        principal, expires = self._decode(token)
        if self._cache_size:
            with self._lock:
                self._verified[token] = (principal, expires)
                while len(self._verified) > self._cache_size:
                    self._verified.popitem(last=False)  # the oldest first
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise NotAuthenticated(f"invalid access token: {exc}") from exc
        self._check_audience(claims)
        subject = claims["sub"]
        if (
            not isinstance(subject, str)
            or not 1 <= len(subject.strip()) <= MAX_SUBJECT
            or subject != subject.strip()
        ):
            raise NotAuthenticated(f"invalid access token: the subject must be 1 to {MAX_SUBJECT} characters")
        scopes = claims.get("scope", "")
        granted = scopes.split() if isinstance(scopes, str) else list(claims.get("scp", []))
        return Principal(subject=subject, scopes=frozenset(granted)), float(claims["exp"])

    def _key(self, token: str) -> Any:
        if self._jwks is None:
            return self._public_key
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise TransientDependencyError(f"the token issuer's JWKS is unreachable: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise NotAuthenticated(f"invalid access token: {exc}") from exc

    def _check_audience(self, claims: dict[str, Any]) -> None:
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise NotAuthenticated("invalid access token: the audience is not this service")


def authenticate(
    verifier: TokenVerifier, metadata: tuple[tuple[str, str | bytes], ...], rpc: str
) -> Principal:
    """The caller named by the `authorization: Bearer <jwt>` metadata, allowed to call `rpc`."""
    values = [value for key, value in metadata if key == "authorization"]
    if not values or not isinstance(values[0], str) or not values[0].startswith("Bearer "):
        raise NotAuthenticated("missing access token: send `authorization: Bearer <token>`")
    principal = verifier.verify(values[0].removeprefix("Bearer ").strip())
    needed = SCOPES[rpc]
    if not principal.has_scope(needed):
        raise PermissionDenied(f"{rpc} needs the scope {needed}")
    return principal


def bind_principal(principal: Principal | None) -> object:
    return _principal.set(principal)


def unbind_principal(token: object) -> None:
    _principal.reset(token)  # type: ignore[arg-type]
