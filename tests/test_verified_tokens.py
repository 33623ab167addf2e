"""The verifier remembers tokens it accepted, never what it refused, never past `exp`,
and still checks revocation (failing closed) on every call."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kit.errors import Unauthenticated, Unavailable
from kit.revocations import RevokedSessions
from kit.tokens import AccessTokenVerifier

ISSUER, AUDIENCE = "tenantry-test", "tenantry-api"


class Keys:
    """A key source that counts lookups and can lose its key or its revocation list."""

    def __init__(self, revoked: RevokedSessions) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.key: Any = self.private.public_key()
        self.revoked = revoked

    async def public_key(self, kid: str) -> Any | None:
        self.revoked.ensure_current()
        return self.key if kid == "k1" else None


def token(keys: Keys, *, lifetime: float = 300, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()),
        "jti": uuid.uuid4().hex, "typ": "access", "iat": now, "nbf": now, "exp": now + lifetime,
        "tid": str(uuid.uuid4()), "roles": ["owner"], "perms": [],
    } | claims  # fmt: skip
    return jwt.encode(body, keys.private, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"})


def verifier_with(remembered: int = 16) -> tuple[AccessTokenVerifier, Keys, RevokedSessions]:
    revoked = RevokedSessions()
    revoked.mark_complete()
    keys = Keys(revoked)
    verifier = AccessTokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, revoked=revoked, remembered=remembered)
    return verifier, keys, revoked


def counting_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = jwt.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("tenantry_client.tokens.jwt.decode", decode)
    return calls


def test_a_token_seen_again_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, keys, _ = verifier_with()
    decodes = counting_decodes(monkeypatch)
    access = token(keys)
    first = asyncio.run(verifier.verify(access))
    second = asyncio.run(verifier.verify(access))
    assert second == first
    assert len(decodes) == 1


def test_a_remembered_token_whose_session_is_revoked_is_refused() -> None:
    verifier, keys, revoked = verifier_with()
    access = token(keys)
    principal = asyncio.run(verifier.verify(access))
    revoked.revoke(principal.session_id, principal.expires_at)
    with pytest.raises(Unauthenticated, match="session has ended"):
        asyncio.run(verifier.verify(access))


def test_a_remembered_token_fails_closed_when_revocations_are_not_current() -> None:
    verifier, keys, revoked = verifier_with()
    access = token(keys)
    asyncio.run(verifier.verify(access))
    revoked._complete = False  # as after a restart of the stream that never delivered a snapshot
    with pytest.raises(Unavailable):
        asyncio.run(verifier.verify(access))


def test_a_remembered_token_is_refused_once_its_key_is_withdrawn() -> None:
    verifier, keys, _ = verifier_with()
    access = token(keys)
    asyncio.run(verifier.verify(access))
    keys.key = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(Unauthenticated):
        asyncio.run(verifier.verify(access))


def test_a_remembered_token_is_not_used_at_or_after_its_exp(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, keys, _ = verifier_with()
    access = token(keys, lifetime=60)
    asyncio.run(verifier.verify(access))
    decodes = counting_decodes(monkeypatch)
    later = time.time() + 60 + 10  # past exp and past the clock leeway
    monkeypatch.setattr("kit.tokens.time.time", lambda: later)
    monkeypatch.setattr("jwt.api_jwt.datetime", _FrozenDatetime(later), raising=False)
    with pytest.raises(Unauthenticated, match="expired"):
        asyncio.run(verifier.verify(access))
    assert len(decodes) == 1


def test_a_refused_token_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, keys, _ = verifier_with()
    bad_audience = token(keys, aud="someone-else")
    decodes = counting_decodes(monkeypatch)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            asyncio.run(verifier.verify(bad_audience))
    assert len(decodes) == 2


def test_the_table_of_remembered_tokens_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier, keys, _ = verifier_with(remembered=2)
    first, second, third = token(keys), token(keys), token(keys)
    for access in (first, second, third):
        asyncio.run(verifier.verify(access))
    decodes = counting_decodes(monkeypatch)
    asyncio.run(verifier.verify(third))
    assert len(decodes) == 0
    asyncio.run(verifier.verify(first))  # the oldest was forgotten
    assert len(decodes) == 1
    assert len(verifier._verified) == 2


class _FrozenDatetime:
    """jwt's own notion of now, moved to `at` (it reads datetime.now(tz=timezone.utc))."""

    def __init__(self, at: float) -> None:
        import datetime as real

        self._real = real.datetime
        self._at = at

    def now(self, tz: Any = None) -> Any:
        return self._real.fromtimestamp(self._at, tz)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
