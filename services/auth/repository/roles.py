"""The roles tenants define (built-in roles live in code), guarded by tenant."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import TenantRole


async def list_roles(session: AsyncSession, tenant_id: UUID) -> list[TenantRole]:
    rows = await session.execute(select(TenantRole).where(TenantRole.tenant_id == tenant_id).order_by(TenantRole.name))
    return list(rows.scalars())


async def find_role(session: AsyncSession, tenant_id: UUID, name: str, *, lock: str | None = None) -> TenantRole | None:
    """lock: "update" while changing the role, "share" while granting it, so
    that a role cannot be deleted between its check and its grant."""
    query = select(TenantRole).where(TenantRole.tenant_id == tenant_id, TenantRole.name == name)
    if lock == "update":
        query = query.with_for_update()
    elif lock == "share":
        query = query.with_for_update(read=True)
    return (await session.execute(query)).scalar_one_or_none()


async def insert_role(
    session: AsyncSession, *, tenant_id: UUID, name: str, description: str, permissions: list[str], now: datetime
) -> TenantRole | None:
    """None if the tenant already has a role of that name."""
    return (
        await session.execute(
            insert(TenantRole)
            .values(
                tenant_id=tenant_id,
                name=name,
                description=description,
                permissions=permissions,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(TenantRole)
        )
    ).scalar_one_or_none()


async def update_role(
    session: AsyncSession, tenant_id: UUID, name: str, *, description: str, permissions: list[str], now: datetime
) -> TenantRole:
    return (
        await session.execute(
            update(TenantRole)
            .where(TenantRole.tenant_id == tenant_id, TenantRole.name == name)
            .values(description=description, permissions=permissions, updated_at=now)
            .returning(TenantRole)
        )
    ).scalar_one()


async def delete_role(session: AsyncSession, tenant_id: UUID, name: str) -> None:
    await session.execute(delete(TenantRole).where(TenantRole.tenant_id == tenant_id, TenantRole.name == name))
