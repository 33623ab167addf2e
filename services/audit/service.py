"""Use cases of the audit trail: validated appends and tenant-scoped reads."""

from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import PLATFORM_SCOPE, Database, bind_scope
from kit.errors import InvalidArgument
from kit.pagination import one_page
from services.audit import chain, repository
from services.audit.archive.queries import archived_start
from services.audit.chain import START, ChainLink
from services.audit.checkpoints import Checkpoint, CheckpointLog
from services.audit.models import AuditEventRow
from services.audit.repository import EventFilter
from services.audit.verification import Verification, verify_chain, walk

log = logging.getLogger(__name__)

MAX_BATCH = 500
_PARTITION_MISSING = "no partition of relation"


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
    def __init__(self, database: Database, *, months_ahead: int, chain_key: bytes, checkpoints: CheckpointLog) -> None:
        self._database = database
        self._months_ahead = months_ahead
        self._chain_key = chain_key
        self._checkpoints = checkpoints
        self._reported_heads: dict[str, ChainLink] = {}

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
        batch adds nothing and the chain never counts an event twice. Per
        scope it costs two round trips whatever the batch's size: bind the
        scope, lock its head and find the stored events; insert and move the head."""
        by_scope: dict[str, dict[UUID, dict[str, Any]]] = defaultdict(dict)
        for event in events:
            by_scope[str(event["tenant_id"]) if event["tenant_id"] else PLATFORM_SCOPE].setdefault(event["id"], event)
        appended = 0
        async with self._database.unit_of_work(scope="") as session:
            for scope in sorted(by_scope):
                candidates = by_scope[scope]
                sequence, previous, stored = await repository.open_chain_for_append(
                    session, scope, [(event_id, event["created_at"]) for event_id, event in candidates.items()]
                )
                rows = []
                for event_id, event in candidates.items():
                    if event_id in stored:
                        continue
                    sequence += 1
                    previous = chain.link(self._chain_key, previous, event, sequence)
                    rows.append({**event, "sequence": sequence, "chain_hash": previous})
                if rows:
                    await repository.insert_events(session, scope, rows, (sequence, previous))
                    appended += len(rows)
        return appended

    async def verify(self, session: AsyncSession, scope: str) -> Verification:
        """The scope's chain as of its head, checked against its signed checkpoints.

        The checkpoints are read before the head, so none can be newer than
        the head it is compared with; the walk stops at that head, so events
        appended meanwhile belong to the next verification. An intact chain
        that grew past its newest checkpoint gets a new one at once: the
        caller leaves with a signature over what was just checked."""
        log = await self._checkpoints.read(scope)
        head = await repository.chain_head(session, scope)
        # Archived months left the database: the live chain resumes after them.
        resumes = await archived_start(session, scope)
        result = await verify_chain(session, self._chain_key, scope, head, log, start=resumes)
        if not result.intact or head.sequence == 0:
            return result
        return replace(result, checkpoint=await self._checkpoints.record(scope, head))

    async def checkpoint_moved_chains(self) -> int:
        """Signs a checkpoint for every chain whose head moved and still extends its last checkpoint."""
        known = self._checkpoints.latest_by_scope()
        async with self._database.unit_of_work(scope="") as session:
            heads = await repository.all_chain_heads(session)
        written = 0
        for scope, head in heads:
            latest = known.get(scope)
            if head.sequence == (latest.sequence if latest else 0):
                continue
            if await self._extends(scope, head, latest):
                await self._checkpoints.record(scope, head)
                written += 1
        return written

    async def _extends(self, scope: str, head: ChainLink, latest: Checkpoint | None) -> bool:
        """Recomputes the links since the last checkpoint: a signature must never cover a cut or rewritten chain.

        A chain that fails is logged once for each head it has, not on every pass."""
        problem = ""
        if latest is not None and head.sequence < latest.sequence:
            problem = "audit chain head is behind its last signed checkpoint"
        else:
            start = ChainLink(latest.sequence, latest.head_hash) if latest else START
            async with self._database.unit_of_work(scope=scope) as session:
                resumes = await archived_start(session, scope)
                start = resumes if resumes.sequence > start.sequence else start
                end = await walk(session, self._chain_key, scope, start=start, through=head.sequence)
            if end != head:
                problem = "audit chain does not extend its last signed checkpoint"
        if problem and self._reported_heads.get(scope) != head:
            self._reported_heads[scope] = head
            log.error(problem + "; none signed", extra={"scope": scope, "head": head.sequence})
        return not problem

    async def ensure_partitions(self) -> int:
        async with self._database.unit_of_work(scope="") as session:
            return await repository.ensure_monthly_partitions(session, datetime.now(UTC).date(), self._months_ahead + 1)

    async def list_own(self, session: AsyncSession, user_id: UUID, where: EventFilter, page_size: int) -> EventPage:
        """A person's own account events; the subject binding lets through those outside the tenant."""
        await bind_scope(session, tenant=where.scope, subject=user_id)
        return await self.list(session, where, page_size)

    async def list(self, session: AsyncSession, where: EventFilter, page_size: int) -> EventPage:
        rows = await repository.list_events(session, where, page_size + 1)
        return EventPage(*one_page(rows, page_size, lambda row: (row.created_at, row.id)))
