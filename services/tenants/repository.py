"""All SQL of the tenants service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.tenants.models import Tenant


async def find_by_slug(session: AsyncSession, slug: str) -> Tenant | None:
    return (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one_or_none()


async def insert_pending(session: AsyncSession, values: dict[str, Any], now: datetime) -> Tenant | None:
    """Inserts a tenant not yet provisioned; None if the slug is taken (even concurrently)."""
    statement = (
        insert(Tenant)
        .values(id=uuid.uuid4(), is_active=False, provisioned_at=None, created_at=now, updated_at=now, **values)
        .on_conflict_do_nothing(index_elements=["slug"])
        .returning(Tenant)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def mark_provisioned(session: AsyncSession, tenant_id: UUID, now: datetime) -> Tenant | None:
    """Completes provisioning; None if it was already complete."""
    statement = (
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.provisioned_at.is_(None))
        .values(provisioned_at=now, is_active=True, updated_at=now)
        .returning(Tenant)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def get_provisioned(session: AsyncSession, tenant_id: UUID) -> Tenant | None:
    return (
        await session.execute(select(Tenant).where(Tenant.id == tenant_id, Tenant.provisioned_at.is_not(None)))
    ).scalar_one_or_none()


async def update_tenant(
    session: AsyncSession, tenant_id: UUID, changes: dict[str, Any], now: datetime
) -> Tenant | None:
    statement = (
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.provisioned_at.is_not(None))
        .values(updated_at=now, **changes)
        .returning(Tenant)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def list_provisioned(session: AsyncSession, *, after: tuple[datetime, UUID] | None, limit: int) -> list[Tenant]:
    query = select(Tenant).where(Tenant.provisioned_at.is_not(None))
    if after:
        query = query.where(tuple_(Tenant.created_at, Tenant.id) > tuple_(*after))
    rows = await session.execute(query.order_by(Tenant.created_at, Tenant.id).limit(limit))
    return list(rows.scalars())
