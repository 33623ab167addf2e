"""All SQL of the tenants service."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.tenants.models import Tenant

# Every change to a tenant row is NOTIFYed on this channel (payload: its id) in
# the transaction that makes it, so every replica's cache hears of it on commit.
TENANT_CHANGES_CHANNEL = "tenantry_tenant_changed"

_TENANT_IN_SCOPE = "SELECT * FROM tenants.provisioned_tenant_in_scope($1)"


async def provisioned_tenant_in_scope(connection: asyncpg.Connection, tenant_id: UUID) -> Tenant | None:
    """The tenant, read with the tenant itself bound as scope: one statement,
    one round trip (see migration 0002); run outside a transaction."""
    row = await connection.fetchrow(_TENANT_IN_SCOPE, tenant_id)
    if row is None:
        return None
    values = dict(row)
    if isinstance(values["settings"], str):  # the pool's jsonb codec hands out text
        values["settings"] = json.loads(values["settings"])
    return Tenant(**values)


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
    tenant = (await session.execute(statement)).scalar_one_or_none()
    if tenant is not None:
        await session.execute(select(func.pg_notify(TENANT_CHANGES_CHANNEL, str(tenant_id))))
    return tenant


async def list_provisioned(session: AsyncSession, *, after: tuple[datetime, UUID] | None, limit: int) -> list[Tenant]:
    query = select(Tenant).where(Tenant.provisioned_at.is_not(None))
    if after:
        query = query.where(tuple_(Tenant.created_at, Tenant.id) > tuple_(*after))
    rows = await session.execute(query.order_by(Tenant.created_at, Tenant.id).limit(limit))
    return list(rows.scalars())
