"""The caller's own account: who they are, their memberships, their default tenant."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.db import bind_scope
from kit.errors import InvalidArgument, PermissionDenied, Unauthenticated
from kit.outbox import Outbox
from services.auth.models import User
from services.auth.repository import invitations, memberships, users
from services.auth.repository.memberships import MembershipView


@dataclass(frozen=True)
class Account:
    user: User
    memberships: list[MembershipView]
    # (tenant id, slug, role) of invitations waiting for a verified email.
    invitations: list[tuple[UUID, str, str]] = field(default_factory=list)


class AccountService:
    def __init__(self, *, outbox: Outbox) -> None:
        self._outbox = outbox

    async def me(self, session: AsyncSession, principal: Principal) -> Account:
        await bind_scope(session, tenant=principal.tenant_id, subject=principal.user_id)
        user = await users.find_user(session, principal.user_id)
        if user is None:
            raise Unauthenticated("the user no longer exists")
        joined = await memberships.memberships_of_user(session, user.id)
        waiting: list[tuple[UUID, str, str]] = []
        if user.email_verified_at is not None:
            member_of = {membership.tenant_id for membership in joined}
            for invitation, slug in await invitations.open_invitations_to(session, user.email, datetime.now(UTC)):
                if invitation.tenant_id not in member_of:
                    waiting.append((invitation.tenant_id, slug, invitation.role))
        return Account(user, joined, waiting)

    async def set_default_tenant(self, session: AsyncSession, principal: Principal, *, tenant_slug: str) -> Account:
        slug = tenant_slug.strip()
        if not slug:
            raise InvalidArgument("tenant_slug", "is required")
        account = await self.me(session, principal)
        chosen = next((m for m in account.memberships if m.slug == slug), None)
        if chosen is None or chosen.status != "active":
            raise PermissionDenied(f"tenant_slug: not an active member of tenant '{slug}'")
        await users.set_default_tenant(session, principal.user_id, chosen.tenant_id, datetime.now(UTC))
        await self._outbox.record(
            session,
            action="user.default_tenant_set",
            resource_type="user",
            resource_id=principal.user_id,
            details={"tenant_slug": slug},
        )
        return await self.me(session, principal)
