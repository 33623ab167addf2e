"""Signing keys of access tokens."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import SigningKey


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
