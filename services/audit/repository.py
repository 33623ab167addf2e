"""All SQL of the audit service."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import any_, bindparam, case, func, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
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


# Each new event goes in as the very document its chain hash covers (format 2
# of services.audit.chain, which holds every column, "" for an empty one) with
# the hash added: one JSON text for a scope's share of a batch, so nothing is
# encoded twice nor per value by the driver, and what is stored is read from
# what was hashed. As json, not jsonb: PostgreSQL then reads each document's
# fields as it parses them, rather than building a jsonb value of the whole
# batch first (about 10% less of its CPU per insert). The columns, with the
# type each is read as.
_DOCUMENT_COLUMNS = (
    ("id", "uuid"),
    ("created_at", "timestamptz"),
    ("tenant_id", "text"),
    ("user_id", "text"),
    ("action", "text"),
    ("resource_type", "text"),
    ("resource_id", "text"),
    ("details", "jsonb"),
    ("ip_address", "text"),
    ("user_agent", "text"),
    ("request_id", "text"),
    ("sequence", "bigint"),
    ("chain_hash", "text"),
    ("format", "smallint"),
    *((column, "text") for column in chain.FORMAT_2_TEXT_FIELDS),
)
_STORED_AS = {
    "tenant_id": "CAST(NULLIF(e.tenant_id, '') AS uuid)",
    "user_id": "CAST(NULLIF(e.user_id, '') AS uuid)",
    "ip_address": "CAST(NULLIF(e.ip_address, '') AS inet)",
    "chain_hash": "decode(e.chain_hash, 'hex')",
    "format": "e.format",
    **{column: f"NULLIF(e.{column}, '')" for column in ("user_agent", "request_id", *chain.FORMAT_2_TEXT_FIELDS)},
}
_INSERT_AND_ADVANCE = text(
    f"""
    WITH inserted AS (
        INSERT INTO audit.events
            ({", ".join("chain_format" if column == "format" else column for column, _ in _DOCUMENT_COLUMNS)})
        SELECT {", ".join(_STORED_AS.get(column, f"e.{column}") for column, _ in _DOCUMENT_COLUMNS)}
        FROM json_to_recordset(CAST(CAST(:documents AS text) AS json))
             AS e({", ".join(f"{column} {kind}" for column, kind in _DOCUMENT_COLUMNS)})
        RETURNING 1
    )
    UPDATE audit.chain_heads SET sequence = :head_sequence, chain_hash = :head_hash
    WHERE scope = :scope AND (SELECT count(*) FROM inserted) = :expected
    """
)


async def insert_events(session: AsyncSession, scope: str, documents: list[bytes], head: tuple[int, bytes]) -> None:
    """Inserts one scope's new events, given as chain.link_document made them, and moves
    its chain head to head.

    The caller holds the head's lock and has left out the stored events."""
    values = {
        "documents": (b"[%s]" % b",".join(documents)).decode(),
        "scope": scope,
        "head_sequence": head[0],
        "head_hash": head[1],
        "expected": len(documents),
    }
    moved = await session.execute(_INSERT_AND_ADVANCE, values)
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError(f"the chain head of {scope} did not move with its events")


def _array_literal(items: list[str]) -> str:
    """A PostgreSQL array literal of values that need no quoting (UUIDs, ISO times):
    one text parameter, rather than an array the driver encodes value by value."""
    return "{" + ",".join(items) + "}"


_OPEN_CHAIN_FOR_APPEND = text(
    "SELECT * FROM audit.open_chain_for_append(:scope, CAST(CAST(:ids AS text) AS uuid[]), "
    "CAST(CAST(:created AS text) AS timestamptz[]))"
)


async def open_chain_for_append(
    session: AsyncSession, scope: str, ids: list[str], created: list[str]
) -> tuple[int, bytes, set[str]]:
    """Binds the scope and locks its chain head for the transaction, in one round trip
    (see the function in migration 0005): the head's sequence and hash, and
    which of the events (ids and ISO times of creation) are stored already, by primary key."""
    row = (
        await session.execute(
            _OPEN_CHAIN_FOR_APPEND,
            {"scope": scope, "ids": _array_literal(ids), "created": _array_literal(created)},
        )
    ).one()
    return int(row[0]), bytes(row[1]), {str(stored) for stored in row[2]}


_OPEN_CHAIN_FOR_APPLICATION = text(
    "SELECT * FROM audit.open_chain_for_application(:scope, CAST(CAST(:ids AS text) AS uuid[]), "
    "CAST(:since AS timestamptz))"
)


async def open_chain_for_application(
    session: AsyncSession, scope: str, ids: list[str], since: datetime
) -> tuple[int, bytes, list[tuple[UUID, datetime]]]:
    """Like open_chain_for_append, for an application's events (migration 0006): the ids
    are looked up by id alone among the events since `since`; the (id, created_at) of those found."""
    values = {"scope": scope, "ids": _array_literal(ids), "since": since}
    row = (await session.execute(_OPEN_CHAIN_FOR_APPLICATION, values)).one()
    return int(row[0]), bytes(row[1]), list(zip(row[2], row[3], strict=True))


async def stored_events(session: AsyncSession, keys: list[tuple[UUID, datetime]]) -> list[AuditEventRow]:
    """The events of the bound scope with these primary keys. One statement text
    whatever the count, so its prepared form is reused."""
    query = select(AuditEventRow).where(
        AuditEventRow.id == any_(bindparam("ids", [key[0] for key in keys], type_=ARRAY(PG_UUID(as_uuid=True)))),
        AuditEventRow.created_at >= min(key[1] for key in keys),
    )
    wanted = set(keys)
    return [row for row in (await session.execute(query)).scalars() if (row.id, row.created_at) in wanted]


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


# What verification reads of each event, as chain.link takes it: ids, address
# and details as text (no UUID, ipaddress or SQLAlchemy-decoded object per
# row: the checkpoint writer walks every event once more), in plain dicts.
_CHAIN_SELECTED = {
    **{field: field for field in chain.EVENT_FIELDS},
    "id": "CAST(id AS text)",
    "tenant_id": "CAST(tenant_id AS text)",
    "user_id": "CAST(user_id AS text)",
    "details": "CAST(details AS text)",
    "ip_address": "host(ip_address)",
    "sequence": "sequence",
    "chain_hash": "chain_hash",
}
_CHAIN_NAMES = list(_CHAIN_SELECTED)


def _chain_page(scope_condition: str) -> str:
    return f"""
        SELECT {", ".join(_CHAIN_SELECTED.values())} FROM audit.events
        WHERE {scope_condition} AND sequence > $1 AND sequence <= $2
        ORDER BY sequence LIMIT $3
    """


# A scope's events by the events_scope_sequence index (migration 0008): conditions on tenant_id
# itself, with which row-level security lets PostgreSQL probe the index (a cast to text is not leakproof).
_TENANT_CHAIN_PAGE = _chain_page("tenant_id = $4::uuid")
_PLATFORM_CHAIN_PAGE = _chain_page("tenant_id IS NULL")


async def chain_page(
    session: AsyncSession, scope: str, *, after_sequence: int, through_sequence: int, limit: int
) -> list[dict[str, Any]]:
    """The scope's chained events with sequences in (after_sequence, through_sequence], in chain
    order, at most limit: those in the first limit sequences after after_sequence (fewer where
    events are missing) or, when none is there, the first event past them. Dicts of
    chain.EVENT_FIELDS, sequence and chain_hash, as chain.link takes them.

    Each page reads its own window of sequences: ORDER BY and LIMIT alone would let PostgreSQL
    read and sort the whole rest of the chain for every page when its statistics are stale."""
    window_end = min(through_sequence, after_sequence + limit)
    rows = await _chain_rows(session, scope, after_sequence, window_end, limit)
    if not rows and window_end < through_sequence:
        rows = await _chain_rows(session, scope, window_end, through_sequence, 1)
    return rows


async def _chain_rows(session: AsyncSession, scope: str, after: int, through: int, limit: int) -> list[dict[str, Any]]:
    # Read through the session's own driver connection, in its transaction (bound to the scope):
    # a page is up to a thousand rows of 25 columns, which SQLAlchemy's result layer would cost
    # more than asyncpg's decoding of them.
    driver = await _driver_in_transaction(session)
    if scope == PLATFORM_SCOPE:
        records = await driver.fetch(_PLATFORM_CHAIN_PAGE, after, through, limit)
    else:
        records = await driver.fetch(_TENANT_CHAIN_PAGE, after, through, limit, scope)
    rows = []
    for record in records:
        event = dict(zip(_CHAIN_NAMES, record, strict=True))
        event["details"] = stored_details(event["details"])
        rows.append(event)
    return rows


async def _driver_in_transaction(session: AsyncSession) -> asyncpg.Connection:
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None or not driver.is_in_transaction():
        # Outside the unit of work's transaction, the scope it bound would not apply.
        raise RuntimeError("the session has no transaction on its driver connection")
    return driver


def stored_details(stored: str) -> Any:
    """Stored details as json.loads gives them, several times faster: every event is read so once more
    for each checkpoint. orjson differs only by reading an integer past 64 bits as a float, which
    chain.normalized makes the same integer again for every number details can hold (a Struct's
    numbers are doubles); what it refuses (nesting too deep, say) json reads."""
    try:
        return orjson.loads(stored)
    except orjson.JSONDecodeError:
        return json.loads(stored)


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
