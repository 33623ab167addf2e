"""The tenant directory: what auth knows of each tenant, kept by the tenants service (no row-level security:
it holds slugs only, and login must resolve a slug before any tenant is bound)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import TenantDirectoryEntry


async def register_tenant(session: AsyncSession, tenant_id: UUID, slug: str) -> TenantDirectoryEntry | None:
    """Registers the tenant once; returns the entry for tenant_id, or None if
    the slug belongs to another tenant."""
    await session.execute(
        insert(TenantDirectoryEntry).values(tenant_id=tenant_id, slug=slug, is_active=True).on_conflict_do_nothing()
    )
    entry = await session.get(TenantDirectoryEntry, tenant_id)
    return entry if entry is not None and entry.slug == slug else None


async def find_tenant(session: AsyncSession, tenant_id: UUID) -> TenantDirectoryEntry | None:
    return await session.get(TenantDirectoryEntry, tenant_id)


async def find_tenant_by_slug(session: AsyncSession, slug: str) -> TenantDirectoryEntry | None:
    return (
        await session.execute(select(TenantDirectoryEntry).where(TenantDirectoryEntry.slug == slug))
    ).scalar_one_or_none()


async def set_tenant_active(session: AsyncSession, tenant_id: UUID, is_active: bool) -> bool:
    result = await session.execute(
        update(TenantDirectoryEntry)
        .where(TenantDirectoryEntry.tenant_id == tenant_id)
        .values(is_active=is_active)
        .returning(TenantDirectoryEntry.tenant_id)
    )
    return result.scalar_one_or_none() is not None


async def set_account_settings(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    enabled: bool,
    role: str | None,
    email_sender_name: str | None,
    email_product_name: str | None,
) -> bool:
    result = await session.execute(
        update(TenantDirectoryEntry)
        .where(TenantDirectoryEntry.tenant_id == tenant_id)
        .values(
            registration_enabled=enabled,
            registration_role=role,
            email_sender_name=email_sender_name,
            email_product_name=email_product_name,
        )
        .returning(TenantDirectoryEntry.tenant_id)
    )
    return result.scalar_one_or_none() is not None
