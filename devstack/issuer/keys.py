"""The issuer's signing keys, one PEM file per key id. The newest key signs; every key in the
folder is published in the JWKS. A rotation adds a key (the old one keeps verifying the tokens it
signed); a withdrawal deletes one (its tokens stop verifying once verifiers' caches expire)."""

import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ALGORITHM = "RS256"
KID_PREFIX = "local-"


class UnknownKey(LookupError):
    pass


class KeyRing:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def kids(self) -> list[str]:
        """The published key ids, oldest first (a kid sorts by its creation time)."""
        return sorted(path.stem for path in self.directory.glob(f"{KID_PREFIX}*.pem"))

    def signing_key(self) -> tuple[str, bytes]:
        """The newest key's id and private PEM; the first key is made on first use."""
        kids = self.kids()
        kid = kids[-1] if kids else self.rotate()
        return kid, self._file(kid).read_bytes()

    def rotate(self) -> str:
        """A new key, which signs from now on. Returns its id."""
        kid = f"{KID_PREFIX}{time.time_ns():016x}"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{kid}.tmp"
        partial.write_bytes(pem)
        partial.chmod(0o600)
        os.replace(partial, self._file(kid))  # a reader never sees half a key
        return kid

    def withdraw(self, kid: str) -> None:
        """Take a key out of the JWKS (and out of signing)."""
        try:
            self._file(kid).unlink()
        except FileNotFoundError:
            raise UnknownKey(
                f"no published key {kid!r} (published: {', '.join(self.kids()) or 'none'})"
            ) from None

    def jwks(self) -> dict[str, Any]:
        """The public halves, as a JWKS document."""
        keys = []
        for kid in self.kids():
            try:
                private = serialization.load_pem_private_key(self._file(kid).read_bytes(), password=None)
            except FileNotFoundError:
                continue  # withdrawn while we listed
            assert isinstance(private, rsa.RSAPrivateKey)
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
            keys.append(public | {"kid": kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": keys}

    def _file(self, kid: str) -> Path:
        if not kid.startswith(KID_PREFIX) or "/" in kid or kid != Path(kid).name:
            raise UnknownKey(f"{kid!r} is not a key id of this issuer")
        return self.directory / f"{kid}.pem"
