"""Which membership a login acts in: the named one if usable, else the default, the last used or the first joined."""

from __future__ import annotations

from uuid import UUID

from kit.error_details import Reason
from kit.errors import PermissionDenied
from services.auth.repository.memberships import MembershipView


def require_usable(membership: MembershipView) -> None:
    if membership.status == "suspended":
        raise PermissionDenied(
            f"tenant_slug: your membership in '{membership.slug}' is suspended", reason=Reason.MEMBERSHIP_SUSPENDED
        )
    if membership.status == "removed":
        raise PermissionDenied(
            f"tenant_slug: you were removed from '{membership.slug}'", reason=Reason.MEMBERSHIP_REMOVED
        )
    if not membership.tenant_active:
        raise PermissionDenied(f"tenant '{membership.slug}' is suspended", reason=Reason.TENANT_SUSPENDED)


def default_membership(usable: list[MembershipView], default_tenant_id: UUID | None) -> MembershipView:
    for membership in usable:
        if membership.tenant_id == default_tenant_id:
            return membership
    used = [m for m in usable if m.last_login_at is not None]
    if used:
        return max(used, key=lambda m: m.last_login_at)  # type: ignore[arg-type, return-value]
    return min(usable, key=lambda m: m.created_at)
