"""Strict access-token verification, the same in every service.

Tokens are checked locally against cached public keys: an authenticated RPC
never calls another service. What is refused: any algorithm but EdDSA (so
`alg: none` and HS256 signed with the public key), unknown keys, a bad
signature, a missing or wrong `iss`, `aud`, `typ`, an expired token or one not
yet valid, and a token whose session has been revoked.

A token that passed every check is remembered (by its exact text, until its
`exp`, in a bounded table), so the same token on the next request skips the
signature check and claim parsing. Everything that can change while the token
lives is still checked on every call: that its key is still the one the key
source hands out (which also keeps the revocation list's fail-closed rule: the
remote key source answers UNAVAILABLE while revocations are not current) and
that its session has not been revoked. Failures are never remembered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import jwt

from kit.context import Principal
from kit.errors import Unauthenticated
from kit.revocations import RevokedSessions

ALGORITHM = "EdDSA"
ACCESS_TOKEN_HEADER_TYPE = "at+jwt"  # RFC 9068
ACCESS_TOKEN_CLAIM_TYPE = "access"
# The actor_type claim of tokens issued to service accounts (absent: a person).
SERVICE_ACCOUNT_ACTOR = "service_account"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "jti", "typ", "iat", "nbf", "exp")
# Tolerated clock skew between services, in seconds.
CLOCK_LEEWAY = 5
# Verified tokens remembered per process: a few thousand live sessions per
# replica, at well under a kilobyte each.
VERIFIED_TOKENS_REMEMBERED = 4096


class PublicKeySource(Protocol):
    async def public_key(self, kid: str) -> Any | None:
        """The verification key for kid, or None when no such key exists."""


class CachedJwks:
    """Public keys fetched as a JWKS, refreshed when an unknown kid shows up.

    Refreshes are single-flight: every caller that needs the keys while a
    fetch is under way waits for that fetch and then looks again, so a burst
    right after a restart is answered with the new keys, not "unknown key".
    Successful fetches happen at most once per min_refresh_interval, so a flood
    of tokens with made-up kids cannot turn into a flood of fetches. A failed
    fetch raises to every caller waiting on it (the fetch decides the error:
    UNAVAILABLE, since the token may well be valid) and does not count
    against the interval.
    """

    def __init__(
        self, fetch: Callable[[], Awaitable[list[dict[str, str]]]], *, min_refresh_interval: float = 2.0
    ) -> None:
        self._fetch = fetch
        self._keys: dict[str, Any] = {}
        self._in_flight: asyncio.Task[None] | None = None
        self._last_refresh = float("-inf")
        self._min_refresh_interval = min_refresh_interval

    async def public_key(self, kid: str) -> Any | None:
        key = self._keys.get(kid)
        if key is None and self._in_flight is None and self._may_refresh():
            self._start_refresh()
        if key is None and self._in_flight is not None:
            await asyncio.shield(self._in_flight)
            key = self._keys.get(kid)
        return key

    def _may_refresh(self) -> bool:
        return time.monotonic() - self._last_refresh >= self._min_refresh_interval

    def _start_refresh(self) -> None:
        # A task, not the first caller's coroutine: a caller that gives up
        # (its deadline passes) must not cancel the fetch the others wait on.
        self._in_flight = asyncio.create_task(self._load())
        self._in_flight.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight = None
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not reported as lost

    async def _load(self) -> None:
        keys = await self._fetch()
        self._keys = {
            jwk["kid"]: jwt.PyJWK(jwk, algorithm=ALGORITHM).key for jwk in keys if jwk.get("alg") == ALGORITHM
        }
        self._last_refresh = time.monotonic()


@dataclass(frozen=True, slots=True)
class _VerifiedToken:
    principal: Principal
    kid: str
    key: Any
    # The token's `exp`, in seconds since the epoch: the entry is never used at or after it.
    expires: float


class AccessTokenVerifier:
    def __init__(
        self,
        keys: PublicKeySource,
        *,
        issuer: str,
        audience: str,
        revoked: RevokedSessions,
        remembered: int = VERIFIED_TOKENS_REMEMBERED,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._revoked = revoked
        # Insertion-ordered: when full, the oldest entry goes first.
        self._verified: dict[str, _VerifiedToken] = {}
        self._remembered = remembered

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known.expires and await self._keys.public_key(known.kid) is known.key:
                if self._revoked.is_revoked(known.principal.session_id):
                    raise Unauthenticated("session has ended")
                return known.principal
            self._verified.pop(token, None)
        principal, kid, key = await self._verify_fully(token)
        if self._revoked.is_revoked(principal.session_id):
            raise Unauthenticated("session has ended")
        self._remember(token, _VerifiedToken(principal, kid, key, principal.expires_at.timestamp()))
        return principal

    def _remember(self, token: str, verified: _VerifiedToken) -> None:
        if self._remembered <= 0:
            return
        while len(self._verified) >= self._remembered:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = verified

    async def _verify_fully(self, token: str) -> tuple[Principal, str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("access token is malformed") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated("access token algorithm is not allowed")
        if header.get("typ") != ACCESS_TOKEN_HEADER_TYPE:
            raise Unauthenticated("token is not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("access token is signed with an unknown key")
        key = await self._keys.public_key(kid)
        if key is None:
            raise Unauthenticated("access token is signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_LEEWAY,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("access token is not valid yet") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("access token is invalid") from None
        if claims["typ"] != ACCESS_TOKEN_CLAIM_TYPE:
            raise Unauthenticated("token is not an access token")
        return _principal_from(claims), kid, key


def _principal_from(claims: dict[str, Any]) -> Principal:
    try:
        tenant = claims.get("tid")
        roles = _strings(claims.get("roles", []))
        permissions = _strings(claims.get("perms", []))
        return Principal(
            user_id=UUID(claims["sub"]),
            tenant_id=UUID(tenant) if tenant else None,
            roles=frozenset(roles),
            session_id=UUID(claims["sid"]),
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            permissions=frozenset(permissions),
            actor_type=_actor_type(claims.get("actor_type", "user")),
        )
    except (ValueError, TypeError, AttributeError):
        raise Unauthenticated("access token is invalid") from None


def _actor_type(value: Any) -> str:
    if value not in ("user", SERVICE_ACCOUNT_ACTOR):
        raise ValueError("unknown actor type")
    return str(value)


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("not a list of strings")
    return value
