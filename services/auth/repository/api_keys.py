"""A tenant's API keys, guarded by tenant; the exchange finds one key by its prefix alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import ApiKey, TenantDirectoryEntry


async def insert_api_key(
    session: AsyncSession,
    *,
    key_id: UUID,
    tenant_id: UUID,
    name: str,
    prefix: str,
    secret_hash: bytes,
    permissions: list[str],
    created_by: UUID,
    created_at: datetime,
    expires_at: datetime | None,
) -> ApiKey | None:
    """None if another key already has the prefix (the caller draws another)."""
    return (
        await session.execute(
            insert(ApiKey)
            .values(
                id=key_id,
                tenant_id=tenant_id,
                name=name,
                prefix=prefix,
                secret_hash=secret_hash,
                permissions=permissions,
                created_by=created_by,
                created_at=created_at,
                expires_at=expires_at,
            )
            .on_conflict_do_nothing(index_elements=["prefix"])
            .returning(ApiKey)
        )
    ).scalar_one_or_none()


async def list_api_keys(
    session: AsyncSession, tenant_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None
) -> list[ApiKey]:
    """The tenant's keys, newest first, from after a (created_at, id) position."""
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
    if after is not None:
        created_at, key_id = after
        query = query.where(
            or_(ApiKey.created_at < created_at, and_(ApiKey.created_at == created_at, ApiKey.id < key_id))
        )
    rows = await session.execute(query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()).limit(limit))
    return list(rows.scalars())


async def find_api_key(session: AsyncSession, tenant_id: UUID, key_id: UUID) -> ApiKey | None:
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
    return (await session.execute(query)).scalar_one_or_none()


async def revoke_api_key(
    session: AsyncSession, tenant_id: UUID, key_id: UUID, *, revoked_by: UUID, now: datetime
) -> ApiKey | None:
    """Marks a live key revoked; None when there is no such live key."""
    return (
        await session.execute(
            update(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by=revoked_by)
            .returning(ApiKey)
        )
    ).scalar_one_or_none()


async def live_key_ids(session: AsyncSession, tenant_id: UUID, now: datetime) -> list[UUID]:
    """The tenant's keys that are neither revoked nor expired."""
    rows = await session.execute(
        select(ApiKey.id).where(
            ApiKey.tenant_id == tenant_id,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    )
    return list(rows.scalars())


@dataclass(frozen=True)
class KeyToExchange:
    key: ApiKey
    tenant_active: bool


async def find_key_to_exchange(session: AsyncSession, prefix: str) -> KeyToExchange | None:
    """The key with this prefix, whichever its tenant: binds the prefix, which
    the table's policy lets through (one row at most), then looks it up."""
    await session.execute(text("SELECT set_config('app.api_key_prefix', :prefix, true)"), {"prefix": prefix})
    row = (
        await session.execute(
            select(ApiKey, TenantDirectoryEntry.is_active)
            .join(TenantDirectoryEntry, TenantDirectoryEntry.tenant_id == ApiKey.tenant_id)
            .where(ApiKey.prefix == prefix)
        )
    ).one_or_none()
    return None if row is None else KeyToExchange(row[0], bool(row[1]))


async def record_use(session: AsyncSession, key_id: UUID, now: datetime) -> bool:
    """Sets the key's last use, unless it was revoked meanwhile (the update waits
    for a revocation in flight and then sees it): False then."""
    touched = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(last_used_at=now)
        .returning(ApiKey.id)
    )
    return touched.scalar_one_or_none() is not None
