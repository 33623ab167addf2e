"""The tenant a request acts in."""

from __future__ import annotations

from uuid import UUID

from kit.context import Principal
from kit.errors import PermissionDenied


def tenant_of(principal: Principal) -> UUID:
    if principal.tenant_id is None:
        raise PermissionDenied("the token names no tenant")
    return principal.tenant_id
