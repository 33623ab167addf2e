"""The Ed25519 keys that sign access tokens, and their public JWKS.

Keys live in the auth schema so that every auth replica signs with the same
key and each can verify the others' tokens. The first replica to start with
no key makes one.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kit.db import Database
from kit.tokens import ALGORITHM
from services.auth.models import SigningKey
from services.auth.repository import signing_keys as key_rows


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_signing_key() -> SigningKey:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # RFC 7638 thumbprint as kid: stable and derived from the key itself.
    thumbprint = hashlib.sha256(f'{{"crv":"Ed25519","kty":"OKP","x":"{_b64url(public)}"}}'.encode()).digest()
    kid = _b64url(thumbprint)
    return SigningKey(
        kid=kid,
        private_key_pem=private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        public_jwk={"kty": "OKP", "crv": "Ed25519", "x": _b64url(public), "kid": kid, "alg": ALGORITHM, "use": "sig"},
        created_at=datetime.now(UTC),
    )


class SigningKeys:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._signing: tuple[str, Ed25519PrivateKey] | None = None
        self._public: dict[str, Ed25519PublicKey] = {}
        self._jwks: list[dict[str, Any]] = []

    async def load(self) -> None:
        async with self._database.unit_of_work(scope="") as session:
            keys = await key_rows.active_signing_keys(session)
            if not keys:
                await key_rows.lock_signing_keys(session)
                keys = await key_rows.active_signing_keys(session)
                if not keys:
                    key = new_signing_key()
                    await key_rows.insert_signing_key(session, key)
                    keys = [key]
        newest = keys[0]
        private = serialization.load_pem_private_key(newest.private_key_pem.encode(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        self._signing = (newest.kid, private)
        self._jwks = [key.public_jwk for key in keys]
        self._public = {}
        for key in keys:
            raw = base64.urlsafe_b64decode(key.public_jwk["x"] + "==")
            self._public[key.kid] = Ed25519PublicKey.from_public_bytes(raw)

    @property
    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        assert self._signing is not None, "signing keys not loaded"
        return self._signing

    def jwks(self) -> list[dict[str, Any]]:
        return list(self._jwks)

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        return self._public.get(kid)
