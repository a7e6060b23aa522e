"""The edge remembers a verified access token until it expires or its key's cache time is over,
never past either; a key withdrawn from the JWKS stops verifying once that time is over."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from devstack.issuer.keys import KeyRing
from devstack.issuer.server import serving_issuer
from devstack.issuer.tokens import LocalIssuer
from grpc_edge.auth import Caller, TokenVerifier
from order_saga.errors import NotAuthenticated
from tests.support.clock import Clock
from tests.support.edge import make_token


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[LocalIssuer]:
    with serving_issuer(KeyRing(tmp_path / "keys")) as served:
        yield served


def verifier_of(issuer: LocalIssuer, **options: Any) -> TokenVerifier:
    return TokenVerifier(issuer=issuer.url, jwks_url=issuer.jwks_url, **options)


def counting_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """PyJWT's decode, counted: one entry per signature actually checked."""
    calls: list[str] = []
    real = jwt.decode

    def decode(encoded: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(encoded)
        return real(encoded, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", decode)
    return calls


def test_a_verified_token_is_remembered_until_it_expires(
    issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(time.time())  # the real now: PyJWT checks the token's expiry against it
    verifier = verifier_of(issuer, clock=clock, key_lifetime_seconds=3600)
    decodes = counting_decodes(monkeypatch)
    alice = make_token(issuer, "alice", ("orders:read",), exp=int(clock.now + 300))

    # When: the same token comes three times within its life
    answers = [verifier.verify(alice) for _ in range(3)]
    # Then: its signature was checked once, and each call got the same caller
    assert answers == [Caller("alice", "order-saga-local-app", frozenset({"orders:read"}))] * 3
    assert decodes == [alice]

    # When: its expiry has passed (the key's cache time has not), then it is checked again
    clock.now += 301
    verifier.verify(alice)
    assert decodes == [alice, alice]


def test_a_remembered_token_is_checked_again_when_its_keys_cache_time_is_over(
    issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(time.time())
    verifier = verifier_of(issuer, clock=clock, key_lifetime_seconds=60)
    decodes = counting_decodes(monkeypatch)
    alice = make_token(issuer, "alice", exp=int(clock.now + 3600))
    verifier.verify(alice)
    clock.now += 59
    verifier.verify(alice)
    assert decodes == [alice]
    clock.now += 2  # a minute after it was verified: its key may have been withdrawn since
    verifier.verify(alice)
    assert decodes == [alice, alice]


def test_a_withdrawn_key_stops_verifying_when_the_key_cache_expires(issuer: LocalIssuer) -> None:
    # Given a verifier that fetched the JWKS for a token of the first key
    verifier = verifier_of(issuer, key_lifetime_seconds=1, cache_size=0, refetch_seconds=0)
    first = issuer.keys.signing_key()[0]
    old = make_token(issuer, "alice")
    verifier.verify(old)
    # When the issuer rotates and withdraws the first key
    issuer.keys.rotate()
    issuer.keys.withdraw(first)
    new = make_token(issuer, "alice")
    # Then the new key verifies at once (an unknown kid refetches), and the old one stops
    # verifying once the cached JWKS expires
    assert verifier.verify(new).subject == "alice"
    time.sleep(1.2)  # the key cache's lifetime, set to one second here
    with pytest.raises(NotAuthenticated, match="signing key"):
        verifier.verify(old)


def test_the_cache_is_bounded_and_can_be_switched_off(
    issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bounded = verifier_of(issuer, cache_size=1)
    uncached = verifier_of(issuer, cache_size=0)
    decodes = counting_decodes(monkeypatch)
    alice, bob = make_token(issuer, "alice"), make_token(issuer, "bob")

    for verifier in (bounded, uncached):
        verifier.verify(alice)
        verifier.verify(bob)  # the bounded cache forgets alice for bob
        verifier.verify(alice)
    assert decodes == [alice, bob, alice] * 2


def test_a_token_that_fails_verification_is_not_remembered(
    issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier(issuer="https://someone-else.example", jwks_url=issuer.jwks_url)
    decodes = counting_decodes(monkeypatch)
    alice = make_token(issuer, "alice")
    for _ in range(2):
        with pytest.raises(NotAuthenticated, match="issuer"):
            verifier.verify(alice)
    assert len(decodes) == 2
