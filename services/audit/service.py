"""Use cases of the audit trail: validated appends and tenant-scoped reads."""

from __future__ import annotations

import hmac
import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import PLATFORM_SCOPE, Database, bind_scope
from kit.errors import InvalidArgument
from kit.pagination import one_page
from services.audit import chain, repository
from services.audit.models import AuditEventRow
from services.audit.repository import EventFilter

MAX_BATCH = 500
VERIFY_PAGE = 1000
EVENT_COLUMNS = (
    "id",
    "tenant_id",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "details",
    "ip_address",
    "user_agent",
    "request_id",
    "created_at",
)
_PARTITION_MISSING = "no partition of relation"


@dataclass(frozen=True)
class Verification:
    intact: bool
    events_checked: int
    first_broken_event_id: str
    first_broken_sequence: int
    problem: str


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEventRow]
    next_page_token: str


def validate_event(index: int, event: dict[str, Any]) -> dict[str, Any]:
    """Checks one incoming event; errors name the event's index and field."""

    def fail(field: str, problem: str) -> InvalidArgument:
        return InvalidArgument(f"events[{index}].{field}", problem)

    for field, limit in (("action", 100), ("resource_type", 100), ("resource_id", 200)):
        if not event[field]:
            raise fail(field, "is required")
        if len(event[field]) > limit:
            raise fail(field, f"must be at most {limit} characters")
    if event["created_at"] is None:
        raise fail("created_at", "is required")
    if event["ip_address"]:
        try:
            ipaddress.ip_address(event["ip_address"])
        except ValueError:
            raise fail("ip_address", "is not an IP address") from None
    if event["user_agent"] and len(event["user_agent"]) > 512:
        event["user_agent"] = event["user_agent"][:512]
    if event["request_id"] and len(event["request_id"]) > 128:
        raise fail("request_id", "must be at most 128 characters")
    return event


class AuditTrail:
    def __init__(self, database: Database, *, months_ahead: int, chain_key: bytes) -> None:
        self._database = database
        self._months_ahead = months_ahead
        self._chain_key = chain_key

    async def append(self, events: list[dict[str, Any]]) -> int:
        if len(events) > MAX_BATCH:
            raise InvalidArgument("events", f"at most {MAX_BATCH} per batch")
        if not events:
            return 0
        checked = [validate_event(index, event) for index, event in enumerate(events)]
        try:
            return await self._insert_by_tenant(checked)
        except IntegrityError as error:
            if _PARTITION_MISSING not in str(error.orig):
                raise
        # An event for a month without a partition yet (an outbox that waited
        # long, a clock far ahead): make the months it needs and try again.
        months = sorted({date(event["created_at"].year, event["created_at"].month, 1) for event in checked})
        async with self._database.unit_of_work(scope="") as session:
            for month in months:
                await repository.ensure_monthly_partitions(session, month, 1)
        return await self._insert_by_tenant(checked)

    async def _insert_by_tenant(self, events: list[dict[str, Any]]) -> int:
        """One transaction; each tenant's events chained and inserted under that tenant's scope.

        Scopes are locked in sorted order, so two batches never deadlock; ids
        already stored are left out after the lock is held, so a retried
        batch adds nothing and the chain never counts an event twice."""
        by_scope: dict[str, dict[UUID, dict[str, Any]]] = defaultdict(dict)
        for event in events:
            by_scope[str(event["tenant_id"]) if event["tenant_id"] else PLATFORM_SCOPE].setdefault(event["id"], event)
        appended = 0
        async with self._database.unit_of_work(scope="") as session:
            for scope in sorted(by_scope):
                await bind_scope(session, tenant=scope)
                sequence, previous = await repository.lock_chain_head(session, scope)
                stored = await repository.stored_ids(session, list(by_scope[scope]))
                rows = []
                for event_id, event in by_scope[scope].items():
                    if event_id in stored:
                        continue
                    sequence += 1
                    previous = chain.link(self._chain_key, previous, event, sequence)
                    rows.append({**event, "sequence": sequence, "chain_hash": previous})
                if rows:
                    await repository.insert_events(session, rows)
                    await repository.advance_chain_head(session, scope, sequence, previous)
                    appended += len(rows)
        return appended

    async def verify(self, session: AsyncSession, scope: str) -> Verification:
        """Walks the scope's chain from its first event, recomputing every link."""
        previous, expected, after = chain.GENESIS, 1, 0
        while True:
            page = await repository.chain_page(session, scope, after, VERIFY_PAGE)
            for row in page:
                if row.sequence != expected:
                    return Verification(
                        False, expected - 1, str(row.id), row.sequence or 0, f"sequence gap: expected {expected}"
                    )
                content = {column: getattr(row, column) for column in EVENT_COLUMNS}
                if row.chain_hash is None or not hmac.compare_digest(
                    chain.link(self._chain_key, previous, content, expected), bytes(row.chain_hash)
                ):
                    return Verification(False, expected - 1, str(row.id), expected, "hash mismatch")
                previous, expected = bytes(row.chain_hash), expected + 1
            if len(page) < VERIFY_PAGE:
                break
            after = page[-1].sequence or 0
        head = await repository.chain_head(session, scope)
        if head != expected - 1:
            return Verification(
                False, expected - 1, "", expected, f"the chain ends at {expected - 1} but its head is {head}"
            )
        return Verification(True, expected - 1, "", 0, "")

    async def ensure_partitions(self) -> int:
        async with self._database.unit_of_work(scope="") as session:
            return await repository.ensure_monthly_partitions(session, datetime.now(UTC).date(), self._months_ahead + 1)

    async def list(self, session: AsyncSession, where: EventFilter, page_size: int) -> EventPage:
        rows = await repository.list_events(session, where, page_size + 1)
        return EventPage(*one_page(rows, page_size, lambda row: (row.created_at, row.id)))
