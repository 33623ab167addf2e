"""The tenant a request acts in."""

from __future__ import annotations

from uuid import UUID

from kit.context import Principal, tenant_required


def tenant_of(principal: Principal) -> UUID:
    if principal.tenant_id is None:
        raise tenant_required()
    return principal.tenant_id
