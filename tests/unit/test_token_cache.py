"""The edge remembers a verified access token until it expires, and never past that."""

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from grpc_edge.auth import Principal, TokenVerifier
from tests.support.clock import Clock

ISSUER, AUDIENCE = "issuer-test", "audience-test"


@pytest.fixture
def key_and_file(tmp_path: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = tmp_path / "public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, public


def token(key: rsa.RSAPrivateKey, sub: str, exp: float) -> str:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": int(exp), "scope": "orders:read"}
    return jwt.encode(claims, key, algorithm="RS256")


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
    key_and_file: tuple[rsa.RSAPrivateKey, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, public = key_and_file
    clock = Clock(time.time())  # the real now: PyJWT checks the token's expiry against it
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_file=public, clock=clock)
    decodes = counting_decodes(monkeypatch)
    alice = token(key, "alice", clock.now + 300)

    # When: the same token comes three times within its life
    answers = [verifier.verify(alice) for _ in range(3)]
    # Then: its signature was checked once, and each call got the same caller
    assert answers == [Principal("alice", frozenset({"orders:read"}))] * 3
    assert decodes == [alice]

    # When: its expiry has passed, then it is checked again (and PyJWT's own rules decide)
    clock.now += 301
    verifier.verify(alice)
    assert decodes == [alice, alice]


def test_the_cache_is_bounded_and_can_be_switched_off(
    key_and_file: tuple[rsa.RSAPrivateKey, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, public = key_and_file
    bounded = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_file=public, cache_size=1)
    uncached = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_file=public, cache_size=0)
    decodes = counting_decodes(monkeypatch)
    alice, bob = token(key, "alice", time.time() + 300), token(key, "bob", time.time() + 300)

    for verifier in (bounded, uncached):
        verifier.verify(alice)
        verifier.verify(bob)  # the bounded cache forgets alice for bob
        verifier.verify(alice)
    assert decodes == [alice, bob, alice] * 2


def test_a_token_that_fails_verification_is_not_remembered(
    key_and_file: tuple[rsa.RSAPrivateKey, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, public = key_and_file
    verifier = TokenVerifier(issuer=ISSUER, audience="someone-else", public_key_file=public)
    decodes = counting_decodes(monkeypatch)
    alice = token(key, "alice", time.time() + 300)
    for _ in range(2):
        with pytest.raises(Exception, match="audience"):
            verifier.verify(alice)
    assert len(decodes) == 2
