"""Members of a tenant: listing, role and status changes, removal, the
tenant's first owner, and the tenant directory kept for the tenants service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.db import Database, bind_scope
from kit.error_details import Precondition, Reason
from kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from kit.outbox import Outbox
from kit.pagination import one_page
from kit.permissions import missing
from kit.validation import display_name, normalize_email, validate_password, validate_text
from services.auth.repository import directory, invitations, memberships, users
from services.auth.repository.memberships import MemberView
from services.auth.service.invitations import InvitationService
from services.auth.service.passwords import PasswordHasher
from services.auth.service.registration import validate_registration_role
from services.auth.service.roles import OWNER, permissions_of, require_may_grant, role_name
from services.auth.service.sessions import SessionService
from services.auth.service.tenancy import tenant_of

SETTABLE_STATUSES = ("active", "suspended")


@dataclass(frozen=True)
class MemberPage:
    members: list[MemberView]
    next_page_token: str


@dataclass(frozen=True)
class ProvisionedOwner:
    user_id: UUID | None
    user_created: bool
    # "active", or "invited" when the email was already registered.
    status: str


# Ends the live tokens of a tenant's machine credentials (session, tenant) and says how many credentials.
TenantTokenRevoker = Callable[[AsyncSession, UUID], Awaitable[int]]


class MembershipService:
    def __init__(
        self,
        *,
        hasher: PasswordHasher,
        outbox: Outbox,
        sessions: SessionService,
        invitations: InvitationService,
        end_api_key_tokens: TenantTokenRevoker | None = None,
    ) -> None:
        self._hasher = hasher
        self._outbox = outbox
        self._sessions = sessions
        self._invitations = invitations
        # Ends the access tokens of a suspended tenant's API keys (their exchanges are refused anyway).
        self._end_api_key_tokens = end_api_key_tokens

    async def list_members(
        self, session: AsyncSession, principal: Principal, *, after: tuple[datetime, UUID] | None, page_size: int
    ) -> MemberPage:
        rows = await memberships.list_members(session, tenant_of(principal), after=after, limit=page_size + 1)
        page, next_token = one_page(rows, page_size, lambda row: (row.created_at, row.membership_id))
        return MemberPage(page, next_token)

    async def update_member(
        self, session: AsyncSession, principal: Principal, *, user_id: UUID, role: str | None, status: str | None
    ) -> MemberView:
        """Takes effect at once: the member's sessions in the tenant end."""
        tenant_id = tenant_of(principal)
        if role is None and status is None:
            raise InvalidArgument("role", "set role or status (or both)")
        if role is not None:
            role = role_name("role", role)
        if status is not None and status not in SETTABLE_STATUSES:
            raise InvalidArgument("status", "must be MEMBERSHIP_STATUS_ACTIVE or MEMBERSHIP_STATUS_SUSPENDED")
        await memberships.lock_tenant_members(session, tenant_id)
        member = await self._manageable_member(session, principal, tenant_id, user_id)
        if member.status == "removed":
            raise FailedPrecondition(
                "user_id: the member was removed; invite them again",
                violation=Precondition.MEMBER_REMOVED,
                subject=f"users/{user_id}",
            )
        if role is not None and role != member.role:
            await require_may_grant(session, principal, tenant_id, role)
        new_role = role or member.role
        new_status = status or member.status
        if member.role == OWNER and (new_role != OWNER or new_status != "active"):
            await self._require_another_owner(session, tenant_id, excluding=user_id)
        await memberships.update_membership(
            session, tenant_id=tenant_id, user_id=user_id, now=datetime.now(UTC), role=role, status=status
        )
        revoked = await self._sessions.revoke_member_sessions(session, tenant_id, [user_id], "membership_changed")
        await self._outbox.record(
            session,
            action="membership.updated",
            resource_type="membership",
            resource_id=user_id,
            details={
                "role": {"from": member.role, "to": new_role},
                "status": {"from": member.status, "to": new_status},
                "sessions_revoked": revoked,
            },
        )
        updated = await memberships.find_member(session, tenant_id, user_id)
        assert updated is not None
        return updated

    async def remove_member(self, session: AsyncSession, principal: Principal, *, user_id: UUID) -> None:
        tenant_id = tenant_of(principal)
        await memberships.lock_tenant_members(session, tenant_id)
        member = await self._manageable_member(session, principal, tenant_id, user_id)
        if member.status == "removed":
            return
        if member.role == OWNER and member.status == "active":
            await self._require_another_owner(session, tenant_id, excluding=user_id)
        await memberships.update_membership(
            session, tenant_id=tenant_id, user_id=user_id, now=datetime.now(UTC), status="removed"
        )
        revoked = await self._sessions.revoke_member_sessions(session, tenant_id, [user_id], "membership_removed")
        await self._outbox.record(
            session,
            action="membership.removed",
            resource_type="membership",
            resource_id=user_id,
            details={"role": member.role, "sessions_revoked": revoked},
        )

    async def _manageable_member(
        self, session: AsyncSession, principal: Principal, tenant_id: UUID, user_id: UUID
    ) -> MemberView:
        """The member, if the caller may manage them: owners only by owners, and
        nobody manages a member whose role grants more than the caller holds."""
        member = await memberships.find_member(session, tenant_id, user_id)
        if member is None:
            raise NotFound("user_id: no such member in this tenant")
        if member.role == OWNER and OWNER not in principal.roles:
            raise PermissionDenied("user_id: only owners may change or remove owners", reason=Reason.OWNER_REQUIRED)
        lacking = missing(principal.permissions, await permissions_of(session, tenant_id, member.role))
        if lacking:
            raise PermissionDenied(
                "user_id: the member's role grants permissions you do not hold",
                reason=Reason.PERMISSIONS_NOT_HELD,
                metadata={"permission": ",".join(lacking)},
            )
        return member

    async def _require_another_owner(self, session: AsyncSession, tenant_id: UUID, *, excluding: UUID) -> None:
        """A tenant always keeps an active owner or an open owner invitation."""
        if await memberships.count_active_with_role(session, tenant_id, OWNER, excluding=excluding):
            return
        if await invitations.count_open_with_role(session, tenant_id, OWNER):
            return
        raise FailedPrecondition(
            "user_id: the tenant's last owner cannot be demoted, suspended or removed",
            violation=Precondition.LAST_OWNER,
            subject=f"users/{excluding}",
        )

    async def provision_owner(
        self, database: Database, *, tenant_id: UUID, slug: str, email: str, full_name: str, password: str
    ) -> ProvisionedOwner:
        """Idempotent: a retry after any partial failure ends in the same state.

        A new email gets an active owner with the operator's password (its
        email unverified until proven). A registered email never gets the
        password applied: it is invited, by email, to become the owner.
        """
        email = normalize_email("email", email)
        full_name = validate_text("full_name", full_name, maximum=200)
        validate_password("password", password)
        async with database.unit_of_work(scope="") as session:
            existing = await users.find_user_by_email(session, email)
        password_hash = None if existing else await self._hasher.hash(password)
        async with database.unit_of_work(scope=str(tenant_id)) as session:
            if await directory.register_tenant(session, tenant_id, slug) is None:
                raise AlreadyExists("tenant_slug: registered to another tenant")
            await memberships.lock_tenant_members(session, tenant_id)
            user = await users.find_user_by_email(session, email)
            if user is None and password_hash is not None:
                return await self._create_owner(session, tenant_id, email, full_name, password_hash)
            assert user is not None  # users are never deleted
            if await memberships.find_membership(session, tenant_id, user.id) is not None:
                return ProvisionedOwner(user.id, user_created=False, status="active")
            await self._invitations.invite_first_owner(session, tenant_id=tenant_id, slug=slug, email=email)
            return ProvisionedOwner(None, user_created=False, status="invited")

    async def _create_owner(
        self, session: AsyncSession, tenant_id: UUID, email: str, full_name: str, password_hash: str
    ) -> ProvisionedOwner:
        now = datetime.now(UTC)
        user_id = await users.insert_user_if_absent(
            session, email=email, full_name=full_name, password_hash=password_hash, now=now
        )
        if user_id is None:  # registered meanwhile: its owner must prove the email
            raise FailedPrecondition(
                "email: registered while the tenant was being created; retry",
                violation=Precondition.ACCOUNT_CHANGED,
                subject="email",
            )
        await memberships.insert_membership_if_absent(
            session, tenant_id=tenant_id, user_id=user_id, role=OWNER, joined_via="tenant_creation", now=now
        )
        await self._outbox.record(
            session,
            action="user.created",
            resource_type="user",
            resource_id=user_id,
            tenant_id=tenant_id,
            details={"email": email},
        )
        await self._outbox.record(
            session,
            action="membership.created",
            resource_type="membership",
            resource_id=user_id,
            tenant_id=tenant_id,
            details={"email": email, "role": OWNER, "joined_via": "tenant_creation"},
        )
        return ProvisionedOwner(user_id, user_created=True, status="active")

    async def revoke_member_sessions(self, session: AsyncSession, principal: Principal, *, user_id: UUID) -> int:
        tenant_id = tenant_of(principal)
        await self._manageable_member(session, principal, tenant_id, user_id)
        revoked = await self._sessions.revoke_member_sessions(session, tenant_id, [user_id], "revoked_by_admin")
        await self._outbox.record(
            session,
            action="auth.session.revoked_by_admin",
            resource_type="membership",
            resource_id=user_id,
            details={"category": "auth", "outcome": "success", "reason": "revoked_by_admin", "sessions": revoked},
        )
        return revoked

    async def set_tenant_account_settings(
        self,
        session: AsyncSession,
        *,
        tenant_id: UUID,
        registration_enabled: bool,
        default_role: str,
        email_sender_name: str,
        email_product_name: str,
    ) -> None:
        await bind_scope(session, tenant=tenant_id)
        branding = {
            "email_sender_name": display_name("email_sender_name", email_sender_name),
            "email_product_name": display_name("email_product_name", email_product_name),
        }
        role = None
        enabled = registration_enabled
        if enabled or default_role:
            try:
                role = await validate_registration_role(session, tenant_id, default_role)
            except NotFound:
                raise InvalidArgument("default_role", f"the tenant has no role '{default_role[:40]}'") from None
        if not await directory.set_account_settings(session, tenant_id, enabled=enabled, role=role, **branding):
            raise NotFound("tenant_id: no such tenant")

    async def set_tenant_status(self, session: AsyncSession, *, tenant_id: UUID, is_active: bool) -> int:
        await bind_scope(session, tenant=tenant_id)
        if not await directory.set_tenant_active(session, tenant_id, is_active):
            raise NotFound("tenant_id: no such tenant")
        if is_active:
            return 0
        revoked = await self._sessions.revoke_tenant_sessions(session, tenant_id)
        details: dict[str, object] = {"sessions": revoked, "reason": "tenant_suspended"}
        if self._end_api_key_tokens is not None:
            details["api_keys"] = await self._end_api_key_tokens(session, tenant_id)
        await self._outbox.record(
            session,
            action="tenant.sessions_revoked",
            resource_type="tenant",
            resource_id=tenant_id,
            tenant_id=tenant_id,
            details=details,
        )
        return revoked
