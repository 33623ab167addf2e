"""The caller's own account: who they are, their memberships, their default tenant."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.db import bind_scope
from kit.error_details import Reason
from kit.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from kit.outbox import Outbox
from services.auth.models import User
from services.auth.repository import invitations, memberships, users
from services.auth.repository import sessions as session_rows
from services.auth.repository.memberships import MembershipView
from services.auth.repository.sessions import SessionView
from services.auth.service.sessions import SessionService


@dataclass(frozen=True)
class Account:
    user: User
    memberships: list[MembershipView]
    # (tenant id, slug, role) of invitations waiting for a verified email.
    invitations: list[tuple[UUID, str, str]] = field(default_factory=list)


class AccountService:
    def __init__(self, *, outbox: Outbox, sessions: SessionService) -> None:
        self._outbox = outbox
        self._sessions = sessions

    async def list_sessions(self, session: AsyncSession, principal: Principal) -> list[SessionView]:
        await bind_scope(session, tenant=principal.tenant_id, subject=principal.user_id)
        return await session_rows.live_sessions_of_user(session, principal.user_id)

    async def revoke_session(self, session: AsyncSession, principal: Principal, *, session_id: UUID) -> None:
        mine = {view.id for view in await self.list_sessions(session, principal)}
        if session_id not in mine:
            raise NotFound("session_id: no such session of yours")
        await self._sessions.revoke_session(session, session_id, "revoked_by_user")
        await self._outbox.record(
            session,
            action="auth.session.revoked",
            resource_type="session",
            resource_id=session_id,
            details={"category": "auth", "outcome": "success", "reason": "revoked_by_user"},
        )

    async def revoke_other_sessions(self, session: AsyncSession, principal: Principal) -> int:
        await bind_scope(session, tenant=principal.tenant_id, subject=principal.user_id)
        revoked = await self._sessions.revoke_user_sessions(
            session, principal.user_id, "revoked_by_user", keep_session_id=principal.session_id
        )
        await self._outbox.record(
            session,
            action="auth.session.revoked_others",
            resource_type="user",
            resource_id=principal.user_id,
            details={"category": "auth", "outcome": "success", "reason": "revoked_by_user", "sessions": revoked},
        )
        return revoked

    async def me(self, session: AsyncSession, principal: Principal) -> Account:
        await bind_scope(session, tenant=principal.tenant_id, subject=principal.user_id)
        user = await users.find_user(session, principal.user_id)
        if user is None:
            raise Unauthenticated("the user no longer exists", reason=Reason.USER_NOT_FOUND)
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
            raise PermissionDenied(f"tenant_slug: not an active member of tenant '{slug}'", reason=Reason.NOT_A_MEMBER)
        await users.set_default_tenant(session, principal.user_id, chosen.tenant_id, datetime.now(UTC))
        await self._outbox.record(
            session,
            action="user.default_tenant_set",
            resource_type="user",
            resource_id=principal.user_id,
            details={"tenant_slug": slug},
        )
        return await self.me(session, principal)
