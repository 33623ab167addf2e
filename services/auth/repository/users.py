"""Global identities (no row-level security: a user is not tenant-scoped)."""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import User


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def find_user(session: AsyncSession, user_id: UUID) -> User | None:
    # Fresh from the database even if this unit of work already loaded it.
    return await session.get(User, user_id, populate_existing=True)


async def insert_user_if_absent(
    session: AsyncSession,
    *,
    email: str,
    full_name: str,
    password_hash: str,
    now: datetime,
    platform_admin: bool = False,
    email_verified: bool = False,
    preferred_language: str | None = None,
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
            email_verified_at=now if email_verified else None,
            preferred_language=preferred_language,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(User.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def claim_unverified_user(
    session: AsyncSession, user_id: UUID, *, full_name: str, password_hash: str, now: datetime
) -> bool:
    """The person who proved the email takes the account over: new name,
    new password, email verified. False if it was verified meanwhile."""
    result = await session.execute(
        update(User)
        .where(User.id == user_id, User.email_verified_at.is_(None))
        .values(full_name=full_name, password_hash=password_hash, email_verified_at=now, updated_at=now)
        .returning(User.id)
    )
    return result.scalar_one_or_none() is not None


async def set_default_tenant(session: AsyncSession, user_id: UUID, tenant_id: UUID, now: datetime) -> None:
    await session.execute(update(User).where(User.id == user_id).values(default_tenant_id=tenant_id, updated_at=now))


async def set_password_hash(session: AsyncSession, user_id: UUID, password_hash: str, now: datetime) -> None:
    await session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash, updated_at=now))


async def mark_email_verified(session: AsyncSession, user_id: UUID, now: datetime) -> None:
    await session.execute(
        update(User)
        .where(User.id == user_id, User.email_verified_at.is_(None))
        .values(email_verified_at=now, updated_at=now)
    )
