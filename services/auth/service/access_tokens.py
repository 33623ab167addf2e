"""Signing access tokens: the one place their claims are written, for sessions, API keys and service accounts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import jwt

from kit.tokens import ACCESS_TOKEN_CLAIM_TYPE, ACCESS_TOKEN_HEADER_TYPE, ALGORITHM, SERVICE_ACCOUNT_ACTOR
from services.auth.service.signing_keys import SigningKeys

__all__ = ["SERVICE_ACCOUNT_ACTOR", "sign_access_token"]


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
    """An EdDSA access JWT (RFC 9068 typ), verified by kit.tokens in every service.

    sid is what revocation names: a person's session, an API key, or a service account's credential."""
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
