"""Opaque bearer secrets (refresh tokens, invitation tokens): random, stored only as SHA-256 hashes.

Each carries a scope in the clear before the secret (the user of a refresh
token, the tenant of an invitation), so that the row-level security scope can
be bound before the hash is looked up. Knowing a scope gains nothing: the
lookup is by the whole token's hash.
"""

from __future__ import annotations

import hashlib
import secrets
from uuid import UUID

from kit.errors import DomainError


def new_opaque_token(scope: UUID) -> str:
    return f"{scope.hex}.{secrets.token_urlsafe(32)}"


def hash_opaque_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def scope_of_opaque_token(token: str, refusal: DomainError) -> UUID:
    """The scope written into the token; refusal when it is not one of ours."""
    scope, _, secret = token.partition(".")
    try:
        if not secret or len(token) > 200:
            raise ValueError
        return UUID(hex=scope)
    except ValueError:
        raise refusal from None
