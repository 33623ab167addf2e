"""Strict access-token checks (RFC 8725, RFC 9068), shared with Tenantry's own kit.

What is refused: any algorithm but EdDSA (so `alg: none` and HS256 signed
with the public key), a header `typ` other than `at+jwt`, a missing or
unknown `kid`, a bad signature, a missing or wrong `iss` or `aud`, a missing
`sub`, `sid`, `jti`, `iat`, `nbf` or `exp`, an expired token or one not yet
valid, and a `typ` claim other than `access`. Keys come from a JWKS fetched
once and fetched again when an unknown kid shows up (a key rotation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import jwt

from tenantry_client.errors import InvalidToken

ALGORITHM = "EdDSA"
ACCESS_TOKEN_HEADER_TYPE = "at+jwt"  # RFC 9068
ACCESS_TOKEN_CLAIM_TYPE = "access"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "jti", "typ", "iat", "nbf", "exp")
# Tolerated clock skew between services, in seconds.
CLOCK_LEEWAY = 5


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


async def verified_claims(
    token: str, keys: PublicKeySource, *, issuer: str, audience: str
) -> tuple[dict[str, Any], str, Any]:
    """The claims of an access token that passed every check, its kid and key.

    Raises InvalidToken naming the first check that failed; errors of the key
    source (keys unreachable) pass through as they are.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidToken("access token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("access token algorithm is not allowed")
    if header.get("typ") != ACCESS_TOKEN_HEADER_TYPE:
        raise InvalidToken("token is not an access token")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("access token is signed with an unknown key")
    key = await keys.public_key(kid)
    if key is None:
        raise InvalidToken("access token is signed with an unknown key")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=CLOCK_LEEWAY,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("access token has expired", reason="TOKEN_EXPIRED") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("access token is not valid yet", reason="TOKEN_NOT_YET_VALID") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("access token is invalid") from None
    if claims["typ"] != ACCESS_TOKEN_CLAIM_TYPE:
        raise InvalidToken("token is not an access token")
    return claims, kid, key


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer …` value; InvalidToken otherwise."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("a bearer access token is required", reason="TOKEN_MISSING")
    return token.strip()
