"""The request context: who is calling and on behalf of which tenant.

Set by the server interceptors from the verified access token (never from a
field the client chooses) and read by the database layer to bind the tenant
for row-level security.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from kit.error_details import Reason
from kit.errors import PermissionDenied, Unauthenticated

PLATFORM_ADMIN_ROLE = "platform_admin"


@dataclass(frozen=True)
class Principal:
    user_id: UUID
    # None for the platform operator, who acts above any tenant.
    tenant_id: UUID | None
    roles: frozenset[str]
    session_id: UUID
    token_id: str
    expires_at: datetime
    # What the token's membership (or the operator) may do; see kit.permissions.
    permissions: frozenset[str] = frozenset()
    # "user", or "api_key" (the token's actor_type claim): a machine identity, user_id and session_id being the key.
    actor_type: str = "user"

    @property
    def is_platform_admin(self) -> bool:
        # Operators act above tenants: a token naming a tenant is never one.
        return self.tenant_id is None and PLATFORM_ADMIN_ROLE in self.roles


@dataclass
class RequestContext:
    request_id: str
    method: str
    peer_ip: str | None = None
    user_agent: str | None = None
    principal: Principal | None = field(default=None)


_current_request: ContextVar[RequestContext | None] = ContextVar("tenantry_request", default=None)


def current_request() -> RequestContext | None:
    return _current_request.get()


def current_principal() -> Principal | None:
    request = _current_request.get()
    return request.principal if request else None


def require_principal() -> Principal:
    """The authenticated caller; the access interceptor guarantees one on authenticated RPCs."""
    principal = current_principal()
    if principal is None:
        raise Unauthenticated("a bearer access token is required", reason=Reason.TOKEN_MISSING)
    return principal


def enter_request(request: RequestContext) -> object:
    return _current_request.set(request)


def leave_request(token: object) -> None:
    _current_request.reset(token)  # type: ignore[arg-type]


def tenant_required() -> PermissionDenied:
    """The refusal of a tenant's RPC to a token that names no tenant (an operator's)."""
    return PermissionDenied("the token names no tenant", reason=Reason.TENANT_REQUIRED)
