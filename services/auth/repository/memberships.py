"""Memberships: one user in one tenant, with a role and a status. Guarded by
tenant, or by subject for a user's own memberships."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Select, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import Membership, TenantDirectoryEntry, User

# Statuses under which a person still belongs to the tenant.
CURRENT_STATUSES = ("active", "suspended")


@dataclass(frozen=True)
class MembershipView:
    """One of a user's memberships, with what login needs of its tenant."""

    tenant_id: UUID
    slug: str
    role: str
    status: str
    tenant_active: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class MemberView:
    """A member as the tenant's admins see it."""

    user_id: UUID
    email: str
    full_name: str
    role: str
    status: str
    joined_via: str
    invited_by: UUID | None
    created_at: datetime
    last_login_at: datetime | None
    membership_id: UUID


async def lock_tenant_members(session: AsyncSession, tenant_id: UUID) -> None:
    """Serialises changes to one tenant's members and invitations, so that two
    concurrent demotions cannot both see another owner and leave none."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('auth.members:' || :tenant))"), {"tenant": str(tenant_id)}
    )


def _membership_views() -> Select:  # type: ignore[type-arg]
    """The columns of a MembershipView, in its order."""
    return select(
        Membership.tenant_id,
        TenantDirectoryEntry.slug,
        Membership.role,
        Membership.status,
        TenantDirectoryEntry.is_active,
        Membership.created_at,
        Membership.last_login_at,
    ).join(TenantDirectoryEntry, TenantDirectoryEntry.tenant_id == Membership.tenant_id)


async def memberships_of_user(session: AsyncSession, user_id: UUID) -> list[MembershipView]:
    """Every membership of the user, across tenants (needs the subject bound)."""
    rows = await session.execute(
        _membership_views().where(Membership.user_id == user_id).order_by(TenantDirectoryEntry.slug)
    )
    return [MembershipView(*row) for row in rows]


async def find_membership(session: AsyncSession, tenant_id: UUID, user_id: UUID) -> MembershipView | None:
    row = (
        await session.execute(
            _membership_views().where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
        )
    ).one_or_none()
    return MembershipView(*row) if row else None


async def insert_membership_if_absent(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    user_id: UUID,
    role: str,
    joined_via: str,
    now: datetime,
    invited_by: UUID | None = None,
) -> bool:
    statement = (
        insert(Membership)
        .values(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            user_id=user_id,
            role=role,
            status="active",
            joined_via=joined_via,
            invited_by=invited_by,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "user_id"])
        .returning(Membership.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def rejoin_removed_membership(
    session: AsyncSession, *, tenant_id: UUID, user_id: UUID, role: str, invited_by: UUID | None, now: datetime
) -> bool:
    """A removed member who accepted a new invitation becomes active again."""
    result = await session.execute(
        update(Membership)
        .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id, Membership.status == "removed")
        .values(role=role, status="active", joined_via="invitation", invited_by=invited_by, updated_at=now)
        .returning(Membership.id)
    )
    return result.scalar_one_or_none() is not None


async def update_membership(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    user_id: UUID,
    now: datetime,
    role: str | None = None,
    status: str | None = None,
) -> bool:
    values: dict[str, object] = {"updated_at": now}
    if role is not None:
        values["role"] = role
    if status is not None:
        values["status"] = status
    result = await session.execute(
        update(Membership)
        .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
        .values(**values)
        .returning(Membership.id)
    )
    return result.scalar_one_or_none() is not None


async def record_login(session: AsyncSession, tenant_id: UUID, user_id: UUID, now: datetime) -> None:
    await session.execute(
        update(Membership)
        .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
        .values(last_login_at=now)
    )


async def find_member(session: AsyncSession, tenant_id: UUID, user_id: UUID) -> MemberView | None:
    rows = await _members(session, tenant_id, extra=[Membership.user_id == user_id], limit=1)
    return rows[0] if rows else None


async def member_status_by_email(session: AsyncSession, tenant_id: UUID, email: str) -> str | None:
    return (
        await session.execute(
            select(Membership.status)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant_id, User.email == email)
        )
    ).scalar_one_or_none()


async def list_members(
    session: AsyncSession, tenant_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[MemberView]:
    """Members of the tenant, oldest first (the cursor is the membership's)."""
    extra = [tuple_(Membership.created_at, Membership.id) > tuple_(*after)] if after else []
    return await _members(session, tenant_id, extra=extra, limit=limit)


async def _members(session: AsyncSession, tenant_id: UUID, *, extra: list, limit: int) -> list[MemberView]:  # type: ignore[type-arg]
    rows = await session.execute(
        select(
            User.id,
            User.email,
            User.full_name,
            Membership.role,
            Membership.status,
            Membership.joined_via,
            Membership.invited_by,
            Membership.created_at,
            Membership.last_login_at,
            Membership.id,
        )
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id, *extra)
        .order_by(Membership.created_at, Membership.id)
        .limit(limit)
    )
    return [MemberView(*tuple(row)) for row in rows]


async def count_active_with_role(
    session: AsyncSession, tenant_id: UUID, role: str, *, excluding: UUID | None = None
) -> int:
    query = select(func.count()).where(
        Membership.tenant_id == tenant_id, Membership.role == role, Membership.status == "active"
    )
    if excluding is not None:
        query = query.where(Membership.user_id != excluding)
    return int((await session.execute(query)).scalar_one())


async def holders_of_role(session: AsyncSession, tenant_id: UUID, role: str) -> list[UUID]:
    rows = await session.execute(
        select(Membership.user_id).where(
            Membership.tenant_id == tenant_id, Membership.role == role, Membership.status.in_(CURRENT_STATUSES)
        )
    )
    return list(rows.scalars())
