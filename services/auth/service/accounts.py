"""The caller's own account: who they are, their memberships, their default tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.db import bind_scope
from kit.errors import InvalidArgument, PermissionDenied, Unauthenticated
from kit.outbox import Outbox
from services.auth.models import User
from services.auth.repository import memberships, users
from services.auth.repository.memberships import MembershipView


@dataclass(frozen=True)
class Account:
    user: User
    memberships: list[MembershipView]


class AccountService:
    def __init__(self, *, outbox: Outbox) -> None:
        self._outbox = outbox

    async def me(self, session: AsyncSession, principal: Principal) -> Account:
        await bind_scope(session, tenant=principal.tenant_id, subject=principal.user_id)
        user = await users.find_user(session, principal.user_id)
        if user is None:
            raise Unauthenticated("the user no longer exists")
        return Account(user, await memberships.memberships_of_user(session, user.id))

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
