"""Dev access tokens for the local stack: an RS256 key pair under `.devstack/jwt/`, made on first
use, whose public half the local edge trusts (JWT_PUBLIC_KEY_FILE in `.devstack/env`)."""

import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from grpc_edge.auth import ALGORITHM, READ_SCOPE, WRITE_SCOPE
from grpc_edge.settings import EdgeSettings

from .envfile import read_env, update_env
from .paths import STATE_DIR

KEY_DIR = STATE_DIR / "jwt"
DEFAULT_SCOPES = (READ_SCOPE, WRITE_SCOPE)
DEFAULT_TTL_SECONDS = 3600


def private_key_file(key_dir: Path | None = None) -> Path:
    return (key_dir or KEY_DIR) / "dev-signing-key.pem"


def public_key_file(key_dir: Path | None = None) -> Path:
    return (key_dir or KEY_DIR) / "dev-signing-key.pub.pem"


def ensure_dev_keys(key_dir: Path | None = None) -> Path:
    """Create the key pair unless it exists, record the public key in `.devstack/env`, return it."""
    private, public = private_key_file(key_dir), public_key_file(key_dir)
    if not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        private.chmod(0o600)
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    # Written only when missing: rewriting .devstack/env on every token would race with other
    # writers (clients minting tokens on several threads lost the file's other keys).
    if key_dir is None and read_env().get("JWT_PUBLIC_KEY_FILE") != str(public):
        update_env(JWT_PUBLIC_KEY_FILE=str(public))
    return public


def mint_token(
    subject: str,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    *,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    key_dir: Path | None = None,
) -> str:
    """A token the local edge accepts: its issuer and audience are the edge's settings."""
    ensure_dev_keys(key_dir)
    settings = EdgeSettings()
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": now,
        "exp": now + ttl_seconds,
        "scope": " ".join(scopes),
    }
    return jwt.encode(claims, private_key_file(key_dir).read_bytes(), algorithm=ALGORITHM)
