"""All SQL of the audit service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import PLATFORM_SCOPE
from services.audit.models import AuditEventRow


@dataclass(frozen=True)
class EventFilter:
    scope: str
    action: str | None = None
    resource_type: str | None = None
    user_id: UUID | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    after: tuple[datetime, UUID] | None = None


async def insert_events(session: AsyncSession, events: list[dict[str, Any]]) -> int:
    """Inserts events, skipping ids already stored; returns how many were new.

    No RETURNING: it would have to pass the tenant read policy, and ingest
    writes for every tenant. The row count says the same."""
    statement = insert(AuditEventRow).values(events).on_conflict_do_nothing(index_elements=["id", "created_at"])
    result = await session.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def ensure_monthly_partitions(session: AsyncSession, first_month: date, months: int) -> int:
    result = await session.execute(select(func.audit.ensure_monthly_partitions(first_month, months)))
    return int(result.scalar_one())


async def list_events(session: AsyncSession, where: EventFilter, limit: int) -> list[AuditEventRow]:
    query = select(AuditEventRow)
    # The explicit tenant filter is kept on top of row-level security: it is
    # what the index serves, and a second line of defence.
    if where.scope == PLATFORM_SCOPE:
        query = query.where(AuditEventRow.tenant_id.is_(None))
    else:
        query = query.where(AuditEventRow.tenant_id == UUID(where.scope))
    if where.action:
        query = query.where(AuditEventRow.action == where.action)
    if where.resource_type:
        query = query.where(AuditEventRow.resource_type == where.resource_type)
    if where.user_id:
        query = query.where(AuditEventRow.user_id == where.user_id)
    if where.start_time:
        query = query.where(AuditEventRow.created_at >= where.start_time)
    if where.end_time:
        query = query.where(AuditEventRow.created_at < where.end_time)
    if where.after:
        query = query.where(tuple_(AuditEventRow.created_at, AuditEventRow.id) < tuple_(*where.after))
    query = query.order_by(AuditEventRow.created_at.desc(), AuditEventRow.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())
