"""All SQL of the audit service."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Text, case, cast, func, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import PLATFORM_SCOPE
from services.audit import chain
from services.audit.chain import START, ChainLink
from services.audit.models import AuditEventRow, ChainHead


@dataclass(frozen=True)
class EventFilter:
    scope: str
    action: str | None = None
    resource_type: str | None = None
    user_id: UUID | None = None
    # "auth", ...: the category column, or for events of the first model, details->>'category'.
    category: str | None = None
    outcome: str | None = None
    actor_type: str | None = None
    actor_id: str | None = None
    session_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    # Also the events recorded outside any tenant (needs the user bound as the subject).
    with_tenantless: bool = False
    start_time: datetime | None = None
    end_time: datetime | None = None
    after: tuple[datetime, UUID] | None = None


# The columns ingest writes, each from an array of the same name: the
# model's text columns, then those needing a cast from text.
_TEXT_COLUMNS = (
    "action",
    "resource_type",
    "resource_id",
    "user_agent",
    "request_id",
    *chain.FORMAT_2_TEXT_FIELDS,
)
_ARRAYS = (
    ("id", "uuid"),
    ("created_at", "timestamptz"),
    ("tenant_id", "uuid"),
    ("user_id", "uuid"),
    *((column, "text") for column in _TEXT_COLUMNS),
    ("details", "text"),
    ("ip_address", "text"),
    ("sequence", "bigint"),
    ("chain_hash", "bytea"),
    ("chain_format", "smallint"),
)
_CAST_ON_INSERT = {"details": "CAST(details AS jsonb)", "ip_address": "CAST(ip_address AS inet)"}
_COLUMN_LIST = ", ".join(column for column, _ in _ARRAYS)

# One statement for a whole scope's share of a batch: the rows go in as
# arrays (no per-row SQL to build or parse) and the chain head moves with them.
_INSERT_AND_ADVANCE = text(
    f"""
    WITH inserted AS (
        INSERT INTO audit.events ({_COLUMN_LIST})
        SELECT {", ".join(_CAST_ON_INSERT.get(column, column) for column, _ in _ARRAYS)}
        FROM unnest({", ".join(f"CAST(:{column} AS {kind}[])" for column, kind in _ARRAYS)})
             AS event({_COLUMN_LIST})
        RETURNING 1
    )
    UPDATE audit.chain_heads SET sequence = :head_sequence, chain_hash = :head_hash
    WHERE scope = :scope AND (SELECT count(*) FROM inserted) = :expected
    """
)


async def insert_events(
    session: AsyncSession, scope: str, events: list[dict[str, Any]], head: tuple[int, bytes]
) -> None:
    """Inserts one scope's new events (dicts holding chain.EVENT_FIELDS, sequence and chain_hash)
    and moves its chain head to head.

    The caller holds the head's lock and has left out the stored events."""
    values: dict[str, Any] = {column: [event[column] for event in events] for column, _ in _ARRAYS}
    values["details"] = [json.dumps(event["details"]) for event in events]
    values.update(scope=scope, head_sequence=head[0], head_hash=head[1], expected=len(events))
    moved = await session.execute(_INSERT_AND_ADVANCE, values)
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError(f"the chain head of {scope} did not move with its events")


_OPEN_CHAIN_FOR_APPEND = text(
    "SELECT * FROM audit.open_chain_for_append(:scope, CAST(:ids AS uuid[]), CAST(:created AS timestamptz[]))"
)


async def open_chain_for_append(
    session: AsyncSession, scope: str, keys: list[tuple[UUID, datetime]]
) -> tuple[int, bytes, set[UUID]]:
    """Binds the scope and locks its chain head for the transaction, in one round trip
    (see the function in migration 0005): the head's sequence and hash, and
    which of the events (id, created_at) are stored already, by primary key."""
    row = (
        await session.execute(
            _OPEN_CHAIN_FOR_APPEND,
            {"scope": scope, "ids": [key[0] for key in keys], "created": [key[1] for key in keys]},
        )
    ).one()
    return int(row[0]), bytes(row[1]), set(row[2])


_OPEN_CHAIN_FOR_APPLICATION = text(
    "SELECT * FROM audit.open_chain_for_application(:scope, CAST(:ids AS uuid[]), CAST(:since AS timestamptz))"
)


async def open_chain_for_application(
    session: AsyncSession, scope: str, ids: list[UUID], since: datetime
) -> tuple[int, bytes, list[tuple[UUID, datetime]]]:
    """Like open_chain_for_append, for an application's events (migration 0006): the ids
    are looked up by id alone among the events since `since`; the (id, created_at) of those found."""
    row = (await session.execute(_OPEN_CHAIN_FOR_APPLICATION, {"scope": scope, "ids": ids, "since": since})).one()
    return int(row[0]), bytes(row[1]), list(zip(row[2], row[3], strict=True))


async def stored_events(session: AsyncSession, keys: list[tuple[UUID, datetime]]) -> list[AuditEventRow]:
    """The events of the bound scope with these primary keys."""
    query = select(AuditEventRow).where(tuple_(AuditEventRow.id, AuditEventRow.created_at).in_(keys))
    return list((await session.execute(query)).scalars())


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
        # Events of the first model kept their category in details only.
        stored_category = case(
            (AuditEventRow.chain_format == chain.FORMAT_1, AuditEventRow.details["category"].astext),
            else_=AuditEventRow.category,
        )
        query = query.where(stored_category == where.category)
    for column, value in (
        (AuditEventRow.outcome, where.outcome),
        (AuditEventRow.actor_type, where.actor_type),
        (AuditEventRow.actor_id, where.actor_id),
        (AuditEventRow.session_id, where.session_id),
        (AuditEventRow.target_type, where.target_type),
        (AuditEventRow.target_id, where.target_id),
    ):
        if value:
            query = query.where(column == value)
    if where.start_time:
        query = query.where(AuditEventRow.created_at >= where.start_time)
    if where.end_time:
        query = query.where(AuditEventRow.created_at < where.end_time)
    if where.after:
        query = query.where(tuple_(AuditEventRow.created_at, AuditEventRow.id) < tuple_(*where.after))
    query = query.order_by(AuditEventRow.created_at.desc(), AuditEventRow.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())
