"""The local token issuer's keys and tokens: the newest key signs, every key is published until
withdrawn, and tokens are shaped as Cognito shapes them."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest

from devstack.issuer.keys import KeyRing, UnknownKey
from devstack.issuer.tokens import LocalIssuer, cognito_scope

URL = "http://127.0.0.1:1/local_orderSaga"


def verify(token: str, keys: KeyRing) -> dict[str, object]:
    """The token's claims, checked against the published key its kid names."""
    published = {key["kid"]: key for key in keys.jwks()["keys"]}
    key = jwt.PyJWK(published[jwt.get_unverified_header(token)["kid"]]).key
    return dict(jwt.decode(token, key, algorithms=["RS256"], issuer=URL))


def test_tokens_minted_on_many_threads_at_once_all_verify(tmp_path: Path) -> None:
    # Given an issuer with no key yet, and eight clients released together
    keys = KeyRing(tmp_path / "keys")
    issuer = LocalIssuer(keys, URL)
    start = threading.Barrier(8, timeout=30)

    def mint_five(client: int) -> list[str]:
        start.wait()
        return [issuer.customer_token(f"user-{client}-{n}") for n in range(5)]

    with ThreadPoolExecutor(8) as pool:
        tokens = [token for minted in pool.map(mint_five, range(8)) for token in minted]
    # Then every token verifies with a published key (racing first keys are all published)
    assert {verify(token, keys)["sub"] for token in tokens} == {
        f"user-{c}-{n}" for c in range(8) for n in range(5)
    }
    assert not list(keys.directory.glob(".*.tmp"))  # no half-written key left behind


def test_a_rotation_signs_with_the_new_key_and_keeps_publishing_the_old(tmp_path: Path) -> None:
    keys = KeyRing(tmp_path / "keys")
    issuer = LocalIssuer(keys, URL)
    old_token = issuer.customer_token("alice")
    first = jwt.get_unverified_header(old_token)["kid"]
    second = keys.rotate()
    new_token = issuer.customer_token("alice")
    assert jwt.get_unverified_header(new_token)["kid"] == second
    assert keys.kids() == [first, second]
    assert verify(old_token, keys)["sub"] == verify(new_token, keys)["sub"] == "alice"
    # When the old key is withdrawn, the JWKS no longer names it
    keys.withdraw(first)
    assert [key["kid"] for key in keys.jwks()["keys"]] == [second]
    with pytest.raises(KeyError):
        verify(old_token, keys)


@pytest.mark.parametrize("kid", ["local-0", "../keys/local-1", "other-1", "local-1/../../x"])
def test_withdrawing_a_key_it_does_not_publish_is_refused(tmp_path: Path, kid: str) -> None:
    keys = KeyRing(tmp_path / "keys")
    keys.signing_key()
    with pytest.raises(UnknownKey):
        keys.withdraw(kid)
    assert len(keys.kids()) == 1


def test_tokens_are_shaped_as_cognitos(tmp_path: Path) -> None:
    keys = KeyRing(tmp_path / "keys")
    issuer = LocalIssuer(keys, URL)
    customer = verify(issuer.customer_token("alice"), keys)
    assert (customer["sub"], customer["username"], customer["token_use"]) == ("alice", "alice", "access")
    assert customer["scope"] == "openid orders-api/orders:read orders-api/orders:write"
    assert "aud" not in customer  # Cognito's access tokens name the client in client_id only
    service = verify(issuer.service_token("storefront", ("orders:read",)), keys)
    assert (service["sub"], service["client_id"], service["scope"]) == (
        "storefront", "storefront", "orders-api/orders:read",
    )  # fmt: skip
    identity = jwt.decode(issuer.id_token("alice"), options={"verify_signature": False})
    assert (identity["token_use"], identity["aud"]) == ("id", customer["client_id"])
    assert json.loads(json.dumps(keys.jwks()))["keys"][0]["alg"] == "RS256"


@pytest.mark.parametrize(
    ("scope", "written"),
    [
        ("orders:read", "orders-api/orders:read"),
        ("orders:act-as", "orders-api/orders:act-as"),
        ("openid", "openid"),
        ("orders-api/orders:write", "orders-api/orders:write"),
    ],
)
def test_this_apis_scopes_get_the_resource_servers_prefix(scope: str, written: str) -> None:
    assert cognito_scope(scope) == written
