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

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

# The header and claim checks and the JWKS cache are the client library's,
# so a backend verifies tokens exactly as Tenantry's services do.
from tenantry_client.errors import InvalidToken
from tenantry_client.tokens import (
    ACCESS_TOKEN_CLAIM_TYPE,
    ACCESS_TOKEN_HEADER_TYPE,
    ALGORITHM,
    CLOCK_LEEWAY,
    REQUIRED_CLAIMS,
    CachedJwks,
    PublicKeySource,
    verified_claims,
)

from kit.context import Principal
from kit.error_details import Reason
from kit.errors import Unauthenticated
from kit.revocations import RevokedSessions

__all__ = [
    "ACCESS_TOKEN_CLAIM_TYPE",
    "ACCESS_TOKEN_HEADER_TYPE",
    "ALGORITHM",
    "API_KEY_ACTOR",
    "CLOCK_LEEWAY",
    "REQUIRED_CLAIMS",
    "AccessTokenVerifier",
    "CachedJwks",
    "PublicKeySource",
]

# The actor_type claim of tokens exchanged for API keys (absent: a person).
API_KEY_ACTOR = "api_key"
# Verified tokens remembered per process: a few thousand live sessions per
# replica, at well under a kilobyte each.
VERIFIED_TOKENS_REMEMBERED = 4096


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
                _refuse_if_revoked(self._revoked, known.principal)
                return known.principal
            self._verified.pop(token, None)
        principal, kid, key = await self._verify_fully(token)
        _refuse_if_revoked(self._revoked, principal)
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
            claims, kid, key = await verified_claims(token, self._keys, issuer=self._issuer, audience=self._audience)
        except InvalidToken as refused:
            raise Unauthenticated(refused.message, reason=Reason(refused.reason)) from None
        return _principal_from(claims), kid, key


def _refuse_if_revoked(revoked: RevokedSessions, principal: Principal) -> None:
    if revoked.is_revoked(principal.session_id):
        if principal.actor_type == API_KEY_ACTOR:
            raise Unauthenticated("API key has been revoked", reason=Reason.API_KEY_REVOKED)
        raise Unauthenticated("session has ended", reason=Reason.TOKEN_REVOKED)


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
        raise Unauthenticated("access token is invalid", reason=Reason.TOKEN_INVALID) from None


def _actor_type(value: Any) -> str:
    if value not in ("user", API_KEY_ACTOR):
        raise ValueError("unknown actor type")
    return str(value)


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("not a list of strings")
    return value
