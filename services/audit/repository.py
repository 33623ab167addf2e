"""All SQL of the audit service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Text, cast, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import PLATFORM_SCOPE
from services.audit.chain import START, ChainLink
from services.audit.models import AuditEventRow, ChainHead


@dataclass(frozen=True)
class EventFilter:
    scope: str
    action: str | None = None
    resource_type: str | None = None
    user_id: UUID | None = None
    # details->>'category', e.g. "auth".
    category: str | None = None
    # Also the events recorded outside any tenant (needs the user bound as the subject).
    with_tenantless: bool = False
    start_time: datetime | None = None
    end_time: datetime | None = None
    after: tuple[datetime, UUID] | None = None


async def insert_events(session: AsyncSession, events: list[dict[str, Any]]) -> None:
    """Inserts new events; the caller has locked the chain head and left out stored ids."""
    await session.execute(insert(AuditEventRow).values(events))


async def stored_ids(session: AsyncSession, ids: list[UUID]) -> set[UUID]:
    rows = await session.execute(select(AuditEventRow.id).where(AuditEventRow.id.in_(ids)))
    return set(rows.scalars())


async def lock_chain_head(session: AsyncSession, scope: str) -> tuple[int, bytes]:
    """The scope's newest sequence and hash, locked until the transaction ends."""
    await session.execute(
        insert(ChainHead)
        .values(scope=scope, sequence=0, chain_hash=b"")
        .on_conflict_do_nothing(index_elements=["scope"])
    )
    row = (
        await session.execute(
            select(ChainHead.sequence, ChainHead.chain_hash).where(ChainHead.scope == scope).with_for_update()
        )
    ).one()
    return int(row[0]), bytes(row[1])


async def advance_chain_head(session: AsyncSession, scope: str, sequence: int, chain_hash: bytes) -> None:
    await session.execute(
        update(ChainHead).where(ChainHead.scope == scope).values(sequence=sequence, chain_hash=chain_hash)
    )


async def chain_head(session: AsyncSession, scope: str) -> ChainLink:
    """The scope's newest link as committed; the chain's start before its first event."""
    found = (
        await session.execute(select(ChainHead.sequence, ChainHead.chain_hash).where(ChainHead.scope == scope))
    ).one_or_none()
    return ChainLink(int(found[0]), bytes(found[1])) if found else START


async def all_chain_heads(session: AsyncSession) -> list[tuple[str, ChainLink]]:
    """Every scope's newest link, for the checkpoint writer (row-level security lets it see them all)."""
    await session.execute(text("SELECT set_config('app.all_chain_heads', 'on', true)"))
    rows = await session.execute(select(ChainHead.scope, ChainHead.sequence, ChainHead.chain_hash))
    return [(scope, ChainLink(int(sequence), bytes(chain_hash))) for scope, sequence, chain_hash in rows]


async def chain_page(
    session: AsyncSession, scope: str, *, after_sequence: int, through_sequence: int, limit: int
) -> list[AuditEventRow]:
    """The scope's chained events in (after_sequence, through_sequence], in chain order."""
    query = (
        select(AuditEventRow)
        .where(func.coalesce(cast(AuditEventRow.tenant_id, Text), PLATFORM_SCOPE) == scope)
        .where(AuditEventRow.sequence > after_sequence, AuditEventRow.sequence <= through_sequence)
        .order_by(AuditEventRow.sequence)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def ensure_monthly_partitions(session: AsyncSession, first_month: date, months: int) -> int:
    result = await session.execute(select(func.audit.ensure_monthly_partitions(first_month, months)))
    return int(result.scalar_one())


async def list_events(session: AsyncSession, where: EventFilter, limit: int) -> list[AuditEventRow]:
    query = select(AuditEventRow)
    # The explicit tenant filter is kept on top of row-level security: it is
    # what the index serves, and a second line of defence.
    if where.scope == PLATFORM_SCOPE:
        query = query.where(AuditEventRow.tenant_id.is_(None))
    elif where.with_tenantless:
        query = query.where(or_(AuditEventRow.tenant_id == UUID(where.scope), AuditEventRow.tenant_id.is_(None)))
    else:
        query = query.where(AuditEventRow.tenant_id == UUID(where.scope))
    if where.action:
        query = query.where(AuditEventRow.action == where.action)
    if where.resource_type:
        query = query.where(AuditEventRow.resource_type == where.resource_type)
    if where.user_id:
        query = query.where(AuditEventRow.user_id == where.user_id)
    if where.category:
        query = query.where(AuditEventRow.details["category"].astext == where.category)
    if where.start_time:
        query = query.where(AuditEventRow.created_at >= where.start_time)
    if where.end_time:
        query = query.where(AuditEventRow.created_at < where.end_time)
    if where.after:
        query = query.where(tuple_(AuditEventRow.created_at, AuditEventRow.id) < tuple_(*where.after))
    query = query.order_by(AuditEventRow.created_at.desc(), AuditEventRow.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())
