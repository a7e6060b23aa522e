"""Tokens shaped like Cognito's (see docs/architecture.md, identity):
- a customer's access token: `sub` is the customer, `client_id` the customer app's client,
  `token_use` is `access`, `username` the customer's;
- a service's access token (the client-credentials grant): `sub` and `client_id` are both the
  client's id;
- a customer's ID token (`token_use` `id`, `aud` the app client), which the edge refuses.
Every token carries the signing key's `kid`, and scopes of this API carry the resource server's
prefix (`orders-api/orders:read`), as Cognito writes them."""

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from order_saga.manifest import RESOURCE_SERVER, SCOPE_ACT_AS, SCOPE_READ, SCOPE_WRITE

from .keys import ALGORITHM, KeyRing

# The app client of the customers' own app (the customer client in the CDK: code grant with PKCE).
CUSTOMER_APP_CLIENT = "order-saga-local-app"
CUSTOMER_SCOPES = ("openid", SCOPE_READ, SCOPE_WRITE)
SERVICE_SCOPES = (SCOPE_READ, SCOPE_WRITE, SCOPE_ACT_AS)
DEFAULT_TTL_SECONDS = 3600


def cognito_scope(scope: str) -> str:
    """A scope as Cognito writes it: this API's scopes (`orders:…`) get the resource server's
    prefix; OpenID scopes and scopes already prefixed stay as they are."""
    if scope.startswith("orders:"):
        return f"{RESOURCE_SERVER}/{scope}"
    return scope


@dataclass(frozen=True)
class LocalIssuer:
    keys: KeyRing
    url: str  # the `iss` of every token

    @property
    def jwks_url(self) -> str:
        """Where its keys are published, as in Cognito: under the issuer URL."""
        return f"{self.url}/.well-known/jwks.json"

    def customer_token(
        self,
        customer: str,
        scopes: tuple[str, ...] = CUSTOMER_SCOPES,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        client: str = CUSTOMER_APP_CLIENT,
    ) -> str:
        return self.sign(
            {
                "sub": customer,
                "client_id": client,
                "token_use": "access",
                "scope": " ".join(map(cognito_scope, scopes)),
                "username": customer,
                "origin_jti": str(uuid.uuid4()),
            },
            ttl_seconds,
        )

    def service_token(
        self, client: str, scopes: tuple[str, ...] = SERVICE_SCOPES, *, ttl_seconds: int = DEFAULT_TTL_SECONDS
    ) -> str:
        claims = {
            "sub": client,
            "client_id": client,
            "token_use": "access",
            "scope": " ".join(map(cognito_scope, scopes)),
        }
        return self.sign(claims, ttl_seconds)

    def id_token(
        self, customer: str, *, ttl_seconds: int = DEFAULT_TTL_SECONDS, client: str = CUSTOMER_APP_CLIENT
    ) -> str:
        claims = {"sub": customer, "aud": client, "token_use": "id", "cognito:username": customer}
        return self.sign(claims, ttl_seconds)

    def sign(self, claims: dict[str, Any], ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
        """`claims` with the issuer, the times and an id, signed by the newest key; a claim given
        as None is left out."""
        now = int(time.time())
        body = {
            "iss": self.url,
            "iat": now,
            "auth_time": now,
            "exp": now + ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        body |= claims
        kid, private_pem = self.keys.signing_key()
        payload = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(payload, private_pem, algorithm=ALGORITHM, headers={"kid": kid})
