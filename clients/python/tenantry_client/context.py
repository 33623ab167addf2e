"""The caller of the current request, set by the gRPC interceptor or the ASGI middleware."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from tenantry_client.errors import InvalidToken, PermissionMissing
from tenantry_client.permissions import missing

# Who a token speaks for (its `actor_type` claim): a person, unless it says otherwise.
ACTOR_USER = "user"
ACTOR_API_KEY = "api_key"


@dataclass(frozen=True)
class Principal:
    """Who calls, from a verified access token: nothing here comes from anything else the client sent."""

    user_id: UUID
    # None for a platform operator's token, which names no tenant.
    tenant_id: UUID | None
    roles: frozenset[str]
    permissions: frozenset[str]
    session_id: UUID
    token_id: str
    expires_at: datetime
    # ACTOR_USER, or ACTOR_API_KEY (then user_id and session_id are the key's id).
    actor_type: str = ACTOR_USER

    def require(self, *permissions: str) -> None:
        """PermissionMissing unless every permission is held (`app.tickets.*` covers `app.tickets.write`)."""
        lacking = missing(self.permissions, permissions)
        if lacking:
            raise PermissionMissing(lacking)

    def require_tenant(self) -> UUID:
        if self.tenant_id is None:
            raise PermissionMissing(["a tenant (this token names none)"])
        return self.tenant_id


_current: ContextVar[Principal | None] = ContextVar("tenantry_client_principal", default=None)


def current_principal() -> Principal | None:
    return _current.get()


def require_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise InvalidToken("a bearer access token is required")
    return principal


def current_tenant_id() -> UUID | None:
    principal = _current.get()
    return principal.tenant_id if principal else None


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Runs the block as principal (the interceptor and middleware use it; so may jobs and tests)."""
    token = _current.set(principal)
    try:
        yield
    finally:
        _current.reset(token)
