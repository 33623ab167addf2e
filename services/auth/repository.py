"""All SQL of the auth service. Tenant-scoped queries filter by tenant
explicitly, under the row-level security bound by the unit of work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import DateTime, and_, cast, delete, func, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import (
    Membership,
    RefreshToken,
    Session,
    SessionRevocation,
    SigningKey,
    TenantDirectoryEntry,
    User,
)

REVOCATION_CHANNEL = "tenantry_session_revoked"


@dataclass(frozen=True)
class MembershipView:
    tenant_id: UUID
    slug: str
    role: str
    tenant_active: bool


@dataclass(frozen=True)
class MemberView:
    user_id: UUID
    email: str
    full_name: str
    role: str
    created_at: datetime


# Users -------------------------------------------------------------------


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def insert_user_if_absent(
    session: AsyncSession,
    *,
    email: str,
    full_name: str,
    password_hash: str,
    now: datetime,
    platform_admin: bool = False,
) -> UUID | None:
    """Creates the user unless the email is taken; returns the new id, or None."""
    statement = (
        insert(User)
        .values(
            id=uuid.uuid4(),
            email=email,
            full_name=full_name,
            password_hash=password_hash,
            is_platform_admin=platform_admin,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(User.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def set_password_hash(session: AsyncSession, user_id: UUID, password_hash: str, now: datetime) -> None:
    await session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash, updated_at=now))


async def live_session_ids_of_user(session: AsyncSession, user_id: UUID) -> list[UUID]:
    """The user's sessions not yet revoked (the subject must be bound for row-level security)."""
    query = select(Session.id).where(and_(Session.user_id == user_id, Session.revoked_at.is_(None)))
    return list((await session.execute(query)).scalars())


# Tenant directory and memberships -----------------------------------------


async def register_tenant(session: AsyncSession, tenant_id: UUID, slug: str) -> TenantDirectoryEntry | None:
    """Registers the tenant once; returns the entry for tenant_id, or None if
    the slug belongs to another tenant."""
    await session.execute(
        insert(TenantDirectoryEntry).values(tenant_id=tenant_id, slug=slug, is_active=True).on_conflict_do_nothing()
    )
    entry = await session.get(TenantDirectoryEntry, tenant_id)
    return entry if entry is not None and entry.slug == slug else None


async def set_tenant_active(session: AsyncSession, tenant_id: UUID, is_active: bool) -> bool:
    result = await session.execute(
        update(TenantDirectoryEntry)
        .where(TenantDirectoryEntry.tenant_id == tenant_id)
        .values(is_active=is_active)
        .returning(TenantDirectoryEntry.tenant_id)
    )
    return result.scalar_one_or_none() is not None


async def memberships_of_user(session: AsyncSession, user_id: UUID) -> list[MembershipView]:
    """Every membership of the user, across tenants (needs the subject bound)."""
    rows = await session.execute(
        select(Membership.tenant_id, TenantDirectoryEntry.slug, Membership.role, TenantDirectoryEntry.is_active)
        .join(TenantDirectoryEntry, TenantDirectoryEntry.tenant_id == Membership.tenant_id)
        .where(Membership.user_id == user_id)
        .order_by(TenantDirectoryEntry.slug)
    )
    return [MembershipView(*row) for row in rows]


async def membership_role(session: AsyncSession, tenant_id: UUID, user_id: UUID) -> tuple[str, bool] | None:
    """The user's role in the tenant and whether the tenant is active."""
    row = (
        await session.execute(
            select(Membership.role, TenantDirectoryEntry.is_active)
            .join(TenantDirectoryEntry, TenantDirectoryEntry.tenant_id == Membership.tenant_id)
            .where(Membership.tenant_id == tenant_id, Membership.user_id == user_id)
        )
    ).one_or_none()
    return (row[0], row[1]) if row else None


async def insert_membership_if_absent(
    session: AsyncSession, *, tenant_id: UUID, user_id: UUID, role: str, now: datetime
) -> bool:
    statement = (
        insert(Membership)
        .values(id=uuid.uuid4(), tenant_id=tenant_id, user_id=user_id, role=role, created_at=now)
        .on_conflict_do_nothing(index_elements=["tenant_id", "user_id"])
        .returning(Membership.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def list_members(
    session: AsyncSession, tenant_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[tuple[MemberView, UUID]]:
    """Members of the tenant, oldest first, each with its membership id (the cursor)."""
    query = (
        select(User.id, User.email, User.full_name, Membership.role, Membership.created_at, Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.tenant_id == tenant_id)
    )
    if after:
        query = query.where(tuple_(Membership.created_at, Membership.id) > tuple_(*after))
    rows = await session.execute(query.order_by(Membership.created_at, Membership.id).limit(limit))
    return [(MemberView(*row[:5]), row[5]) for row in rows]


# Sessions and refresh tokens ---------------------------------------------


async def insert_session(session: AsyncSession, *, user_id: UUID, tenant_id: UUID | None, now: datetime) -> UUID:
    session_id = uuid.uuid4()
    session.add(Session(id=session_id, user_id=user_id, tenant_id=tenant_id, created_at=now))
    await session.flush()
    return session_id


async def insert_refresh_token(
    session: AsyncSession,
    *,
    token_hash: bytes,
    session_id: UUID,
    user_id: UUID,
    tenant_id: UUID | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    await session.execute(
        insert(RefreshToken).values(
            token_hash=token_hash,
            session_id=session_id,
            user_id=user_id,
            tenant_id=tenant_id,
            created_at=now,
            expires_at=expires_at,
        )
    )


@dataclass(frozen=True)
class RedeemedToken:
    session_id: UUID
    user_id: UUID
    tenant_id: UUID | None


async def redeem_refresh_token(session: AsyncSession, token_hash: bytes, now: datetime) -> RedeemedToken | None:
    """Marks an unused, unexpired token of a live session used, atomically:
    of two concurrent refreshes with one token, exactly one wins."""
    row = (
        await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.expires_at > now,
                RefreshToken.session_id.in_(select(Session.id).where(Session.revoked_at.is_(None))),
            )
            .values(used_at=now)
            .returning(RefreshToken.session_id, RefreshToken.user_id, RefreshToken.tenant_id)
        )
    ).one_or_none()
    if row is None:
        return None
    await session.execute(update(Session).where(Session.id == row[0]).values(last_refreshed_at=now))
    return RedeemedToken(*row)


async def find_refresh_token(session: AsyncSession, token_hash: bytes) -> RefreshToken | None:
    return await session.get(RefreshToken, token_hash)


async def revoke_sessions(
    session: AsyncSession,
    *,
    reason: str,
    revoked_until: datetime,
    session_id: UUID | None = None,
    tenant_id: UUID | None = None,
) -> list[UUID]:
    """Revokes one session, or every live session of a tenant, lists them for
    the revocation feed and notifies every auth replica on commit."""
    condition = Session.id == session_id if session_id is not None else Session.tenant_id == tenant_id
    revoked = (
        update(Session)
        .where(and_(condition, Session.revoked_at.is_(None)))
        .values(revoked_at=func.now(), revoke_reason=reason)
        .returning(Session.id)
        .cte("revoked")
    )
    listed = (
        insert(SessionRevocation)
        .from_select(
            ["session_id", "revoked_until"], select(revoked.c.id, cast(literal(revoked_until), DateTime(timezone=True)))
        )
        .on_conflict_do_update(index_elements=["session_id"], set_={"revoked_until": text("excluded.revoked_until")})
        .returning(SessionRevocation.session_id, SessionRevocation.revoked_until)
        .cte("listed")
    )
    rows = await session.execute(
        select(
            listed.c.session_id,
            func.pg_notify(
                REVOCATION_CHANNEL,
                func.concat(listed.c.session_id, " ", func.extract("epoch", listed.c.revoked_until)),
            ),
        )
    )
    return [row[0] for row in rows]


async def prune_revocations(session: AsyncSession, now: datetime) -> int:
    """Forgets revocations whose access tokens have all expired."""
    result = await session.execute(delete(SessionRevocation).where(SessionRevocation.revoked_until <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def live_revocations(session: AsyncSession, now: datetime) -> list[tuple[UUID, datetime]]:
    rows = await session.execute(
        select(SessionRevocation.session_id, SessionRevocation.revoked_until).where(
            SessionRevocation.revoked_until > now
        )
    )
    return [(row[0], row[1]) for row in rows]


# Signing keys --------------------------------------------------------------


async def active_signing_keys(session: AsyncSession) -> list[SigningKey]:
    rows = await session.execute(
        select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.created_at.desc())
    )
    return list(rows.scalars())


async def insert_signing_key(session: AsyncSession, key: SigningKey) -> None:
    session.add(key)
    await session.flush()


async def lock_signing_keys(session: AsyncSession) -> None:
    """Serialises key creation, so that replicas starting together make one key, not two."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('auth.signing_keys'))"))
