"""The SQL of exports and retention: chain stretches by time, links by sequence, archived months."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import PLATFORM_SCOPE
from services.audit.chain import START, ChainLink
from services.audit.models import AuditEventRow


def _of_scope(scope: str) -> ColumnElement[bool]:
    # On tenant_id itself, the events_scope_sequence index's first column (migration 0008): a leakproof
    # condition, which row-level security lets PostgreSQL probe that index with.
    return AuditEventRow.tenant_id.is_(None) if scope == PLATFORM_SCOPE else AuditEventRow.tenant_id == UUID(scope)


async def sequence_bound(
    session: AsyncSession,
    scope: str,
    *,
    start_time: datetime | None,
    end_time: datetime | None,
    lowest: bool,
) -> int | None:
    """The lowest (or highest) sequence of the scope's events created in [start_time, end_time)."""
    query = select(AuditEventRow.sequence).where(_of_scope(scope), AuditEventRow.sequence.is_not(None))
    if start_time is not None:
        query = query.where(AuditEventRow.created_at >= start_time)
    if end_time is not None:
        query = query.where(AuditEventRow.created_at < end_time)
    order = AuditEventRow.sequence.asc() if lowest else AuditEventRow.sequence.desc()
    found = (await session.execute(query.order_by(order).limit(1))).scalar_one_or_none()
    return None if found is None else int(found)


async def link_at(session: AsyncSession, scope: str, sequence: int) -> ChainLink | None:
    """The chain's link at sequence: the chain's start at 0, a stored event, or
    the last event of an archived month (whose partition is gone)."""
    if sequence == 0:
        return START
    stored = (
        await session.execute(
            select(AuditEventRow.chain_hash).where(_of_scope(scope), AuditEventRow.sequence == sequence).limit(1)
        )
    ).scalar_one_or_none()
    if stored is None:
        stored = (
            await session.execute(
                text("SELECT chain_hash FROM audit.archived_links WHERE scope = :scope AND sequence = :sequence"),
                {"scope": scope, "sequence": sequence},
            )
        ).scalar_one_or_none()
    return None if stored is None else ChainLink(sequence, bytes(stored))


async def archived_start(session: AsyncSession, scope: str) -> ChainLink:
    """Where the scope's live chain resumes: the newest archived link, or the chain's start."""
    row = (
        await session.execute(
            text(
                "SELECT sequence, chain_hash FROM audit.archived_links WHERE scope = :scope "
                "ORDER BY sequence DESC LIMIT 1"
            ),
            {"scope": scope},
        )
    ).one_or_none()
    return START if row is None else ChainLink(int(row[0]), bytes(row[1]))


async def month_scopes(session: AsyncSession, month: date) -> list[tuple[str, int, int, int]]:
    """Every scope with events in the month: (scope, events, first sequence, last sequence).

    Runs under the retention binding, which the read policy of migration 0007 lets see every scope."""
    rows = await session.execute(
        text(
            "SELECT coalesce(tenant_id::text, 'platform'), count(*), min(sequence), max(sequence) "
            "FROM audit.events WHERE created_at >= :start AND created_at < :end GROUP BY 1 ORDER BY 1"
        ),
        {"start": month, "end": next_month(month)},
    )
    return [(str(scope), int(count), int(first), int(last)) for scope, count, first, last in rows]


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)
