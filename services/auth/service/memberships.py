"""Tenant members and the tenant directory kept for the tenants service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.db import Database, bind_scope
from kit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from kit.outbox import Outbox
from kit.pagination import one_page
from kit.validation import normalize_email, validate_password, validate_text
from services.auth import repository
from services.auth.repository import MemberView
from services.auth.service.passwords import PasswordHasher
from services.auth.service.sessions import SessionService

ROLES = ("owner", "admin", "viewer")


@dataclass(frozen=True)
class MemberPage:
    members: list[MemberView]
    next_page_token: str


@dataclass(frozen=True)
class NewUser:
    full_name: str
    password_hash: str


@dataclass(frozen=True)
class FoundUser:
    user_id: UUID
    full_name: str
    created: bool


@dataclass(frozen=True)
class ProvisionedOwner:
    user_id: UUID
    user_created: bool


class MembershipService:
    def __init__(self, *, hasher: PasswordHasher, outbox: Outbox, sessions: SessionService) -> None:
        self._hasher = hasher
        self._outbox = outbox
        self._sessions = sessions

    async def list_members(
        self, session: AsyncSession, principal: Principal, *, after: tuple[datetime, UUID] | None, page_size: int
    ) -> MemberPage:
        tenant_id = _tenant_of(principal)
        rows = await repository.list_members(session, tenant_id, after=after, limit=page_size + 1)
        page, next_token = one_page(rows, page_size, lambda row: (row[0].created_at, row[1]))
        return MemberPage([member for member, _ in page], next_token)

    async def add_member(
        self, database: Database, principal: Principal, *, email: str, full_name: str, role: str, password: str
    ) -> MemberView:
        """Owns its units of work: a new user's password is hashed between them."""
        tenant_id = _tenant_of(principal)
        email = normalize_email("email", email)
        if role not in ROLES:
            raise InvalidArgument("role", "must be ROLE_OWNER, ROLE_ADMIN or ROLE_VIEWER")
        if role == "owner" and "owner" not in principal.roles:
            raise PermissionDenied("only owners may add owners")
        new_user = await self._new_user_if_needed(database, email=email, full_name=full_name, password=password)
        async with database.unit_of_work() as session:
            user = await self._find_or_create_user(session, email=email, new_user=new_user, tenant_id=tenant_id)
            now = datetime.now(UTC)
            if not await repository.insert_membership_if_absent(
                session, tenant_id=tenant_id, user_id=user.user_id, role=role, now=now
            ):
                raise AlreadyExists("email: already a member of this tenant")
            await self._outbox.record(
                session,
                action="membership.created",
                resource_type="membership",
                resource_id=user.user_id,
                details={"email": email, "role": role},
            )
        return MemberView(user_id=user.user_id, email=email, full_name=user.full_name, role=role, created_at=now)

    async def provision_owner(
        self, database: Database, *, tenant_id: UUID, slug: str, email: str, full_name: str, password: str
    ) -> ProvisionedOwner:
        """Idempotent: a retry after any partial failure ends in the same state."""
        email = normalize_email("email", email)
        new_user = await self._new_user_if_needed(database, email=email, full_name=full_name, password=password)
        async with database.unit_of_work(scope=str(tenant_id)) as session:
            return await self._provision_owner(session, tenant_id, slug, email, new_user)

    async def _provision_owner(
        self, session: AsyncSession, tenant_id: UUID, slug: str, email: str, new_user: NewUser | None
    ) -> ProvisionedOwner:
        if await repository.register_tenant(session, tenant_id, slug) is None:
            raise AlreadyExists("tenant_slug: registered to another tenant")
        user = await self._find_or_create_user(session, email=email, new_user=new_user, tenant_id=tenant_id)
        if await repository.insert_membership_if_absent(
            session, tenant_id=tenant_id, user_id=user.user_id, role="owner", now=datetime.now(UTC)
        ):
            await self._outbox.record(
                session,
                action="membership.created",
                resource_type="membership",
                resource_id=user.user_id,
                tenant_id=tenant_id,
                details={"email": email, "role": "owner"},
            )
        return ProvisionedOwner(user_id=user.user_id, user_created=user.created)

    async def set_tenant_status(self, session: AsyncSession, *, tenant_id: UUID, is_active: bool) -> int:
        await bind_scope(session, tenant=tenant_id)
        if not await repository.set_tenant_active(session, tenant_id, is_active):
            raise NotFound("tenant_id: no such tenant")
        if is_active:
            return 0
        revoked = await self._sessions.revoke_tenant_sessions(session, tenant_id)
        await self._outbox.record(
            session,
            action="tenant.sessions_revoked",
            resource_type="tenant",
            resource_id=tenant_id,
            tenant_id=tenant_id,
            details={"sessions": revoked, "reason": "tenant_suspended"},
        )
        return revoked

    async def _new_user_if_needed(
        self, database: Database, *, email: str, full_name: str, password: str
    ) -> NewUser | None:
        """For an email with no user yet: the validated name and the password's
        hash, computed holding no database connection. None if the user exists."""
        async with database.unit_of_work(scope="") as session:
            if await repository.find_user_by_email(session, email) is not None:
                return None
        full_name = validate_text("full_name", full_name, maximum=200)
        validate_password("password", password)
        return NewUser(full_name, await self._hasher.hash(password))

    async def _find_or_create_user(
        self, session: AsyncSession, *, email: str, new_user: NewUser | None, tenant_id: UUID
    ) -> FoundUser:
        existing = await repository.find_user_by_email(session, email)
        if existing is not None:
            return FoundUser(existing.id, existing.full_name, created=False)
        if new_user is None:  # users are never deleted, so this cannot happen
            raise NotFound("email: the user vanished; retry")
        full_name = new_user.full_name
        user_id = await repository.insert_user_if_absent(
            session, email=email, full_name=full_name, password_hash=new_user.password_hash, now=datetime.now(UTC)
        )
        if user_id is None:  # created meanwhile by a concurrent request
            raced = await repository.find_user_by_email(session, email)
            assert raced is not None
            return FoundUser(raced.id, raced.full_name, created=False)
        await self._outbox.record(
            session,
            action="user.created",
            resource_type="user",
            resource_id=user_id,
            tenant_id=tenant_id,
            details={"email": email},
        )
        return FoundUser(user_id, full_name, created=True)


def _tenant_of(principal: Principal) -> UUID:
    if principal.tenant_id is None:
        raise PermissionDenied("the token names no tenant")
    return principal.tenant_id
