"""Access tokens as auth signs them, for sessions and API keys alike (RFC 9068 shape, EdDSA)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import jwt

from kit.tokens import ACCESS_TOKEN_CLAIM_TYPE, ACCESS_TOKEN_HEADER_TYPE, ALGORITHM
from services.auth.service.signing_keys import SigningKeys


def sign_access_token(
    keys: SigningKeys,
    *,
    issuer: str,
    audience: str,
    subject: UUID,
    session_id: UUID,
    tenant_id: UUID | None,
    roles: Iterable[str],
    permissions: Iterable[str],
    now: datetime,
    ttl_seconds: int,
    actor_type: str | None = None,
) -> str:
    """A signed access token; `sid` is what revocation names (a session, or an API key)."""
    issued_at = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": str(subject),
        "roles": list(roles),
        "perms": sorted(permissions),
        "sid": str(session_id),
        "jti": str(uuid.uuid4()),
        "typ": ACCESS_TOKEN_CLAIM_TYPE,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl_seconds,
    }
    if tenant_id is not None:
        claims["tid"] = str(tenant_id)
    if actor_type is not None:
        claims["actor_type"] = actor_type
    kid, private_key = keys.signing_key
    return jwt.encode(claims, private_key, algorithm=ALGORITHM, headers={"kid": kid, "typ": ACCESS_TOKEN_HEADER_TYPE})
