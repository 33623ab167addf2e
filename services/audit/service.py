"""Use cases of the audit trail: validated appends and tenant-scoped reads."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import PLATFORM_SCOPE, Database, bind_scope
from kit.errors import AlreadyExists, InvalidArgument
from kit.pagination import one_page
from services.audit import application_ingest, chain, repository
from services.audit.archive.queries import archived_start
from services.audit.chain import START, ChainLink
from services.audit.checkpoints import Checkpoint, CheckpointLog
from services.audit.event_model import validate_event
from services.audit.models import AuditEventRow
from services.audit.repository import EventFilter
from services.audit.verification import Verification, verify_chain, walk

log = logging.getLogger(__name__)

MAX_BATCH = 500
_PARTITION_MISSING = "no partition of relation"
_UNIQUE_VIOLATION = "23505"
T = TypeVar("T")


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEventRow]
    next_page_token: str


async def chain_and_insert(
    session: AsyncSession, chain_key: bytes, scope: str, events: Iterable[dict[str, Any]], head: tuple[int, bytes]
) -> list[int]:
    """Links the events one after the other from the scope's head (sequence, hash), locked by
    repository.open_chain_for_append, inserts them and moves the head, in one round trip; their
    sequences. Every append goes through here: ingest, and the audit service's own events."""
    sequence, previous = head
    documents: list[bytes] = []
    sequences: list[int] = []
    for event in events:
        sequence += 1
        previous, document = chain.link_document(chain_key, previous, event, sequence)
        documents.append(document)
        sequences.append(sequence)
    if documents:
        await repository.insert_events(session, scope, documents, (sequence, previous))
    return sequences


class AuditTrail:
    def __init__(self, database: Database, *, months_ahead: int, chain_key: bytes, checkpoints: CheckpointLog) -> None:
        self._database = database
        self._months_ahead = months_ahead
        self._chain_key = chain_key
        self._checkpoints = checkpoints
        self._reported_heads: dict[str, ChainLink] = {}

    async def append(self, events: list[dict[str, Any]]) -> int:
        """Tenantry's services' events (the internal ingest), each into its own tenant's chain."""
        if len(events) > MAX_BATCH:
            raise InvalidArgument("events", f"at most {MAX_BATCH} per batch")
        if not events:
            return 0
        checked = [validate_event(index, event) for index, event in enumerate(events)]
        by_scope: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for event in checked:
            by_scope[event["tenant_id"] or PLATFORM_SCOPE].setdefault(event["id"], event)
        appended = 0
        for scope in sorted(by_scope):
            candidates = by_scope[scope]
            appended += await self._with_partitions(
                list(candidates.values()), functools.partial(self._insert_for_tenant, scope, candidates)
            )
        return appended

    async def append_for_application(self, tenant_id: UUID, events: list[dict[str, Any]]) -> list[tuple[str, int]]:
        """An application's events (checked by application_ingest) into its tenant's chain,
        in one transaction; each event's (id, sequence), in order, the same for a replay."""
        if not events:
            return []
        try:
            return await self._with_partitions(events, lambda: self._insert_for_application(str(tenant_id), events))
        except IntegrityError as error:
            # Another tenant's event has this very (id, created_at): row-level
            # security hid it from the lookup. Refused without saying more.
            if getattr(error.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
            raise AlreadyExists("events: an event id of this batch is used already; choose new ids") from None

    async def _with_partitions(self, events: list[dict[str, Any]], insert: Callable[[], Awaitable[T]]) -> T:
        try:
            return await insert()
        except IntegrityError as error:
            if _PARTITION_MISSING not in str(error.orig):
                raise
        # An event for a month without a partition yet (an outbox that waited
        # long, a clock far ahead): make the months it needs and try again.
        months = sorted({date(event["created_at"].year, event["created_at"].month, 1) for event in events})
        async with self._database.unit_of_work(scope="") as session:
            for month in months:
                await repository.ensure_monthly_partitions(session, month, 1)
        return await insert()

    async def _insert_for_tenant(self, scope: str, candidates: dict[str, dict[str, Any]]) -> int:
        """One tenant's events of a batch (by id), chained and inserted under its scope in a
        transaction of their own: the tenant's head lock is held while its own events go in,
        not while the batch's other tenants' do, so batches that share tenants follow each
        other tenant by tenant rather than whole.

        Ids already stored are left out after the lock is held, so a batch sent again after a
        failure part-way (the tenants before it committed) adds nothing twice, and the chain
        never counts an event twice. Two round trips whatever the count besides BEGIN and
        COMMIT: bind the scope, lock its head and find the stored events; insert and move the head."""
        async with self._database.unit_of_work(scope="") as session:
            sequence, previous, stored = await repository.open_chain_for_append(
                session,
                scope,
                list(candidates),
                [event["created_at"].isoformat() for event in candidates.values()],
            )
            new = [event for event_id, event in candidates.items() if event_id not in stored]
            return len(await chain_and_insert(session, self._chain_key, scope, new, (sequence, previous)))

    async def _insert_for_application(self, scope: str, events: list[dict[str, Any]]) -> list[tuple[str, int]]:
        """Two round trips for a new batch (lock the head and look the ids up; insert and move
        the head), one more when some ids are stored already (read them to compare)."""
        since = datetime.now(UTC) - application_ingest.LOOKUP_WINDOW
        async with self._database.unit_of_work(scope="") as session:
            sequence, previous, found = await repository.open_chain_for_application(
                session, scope, [event["id"] for event in events], since
            )
            sequences: dict[str, int] = {}
            if found:
                stored = {str(row.id): row for row in await repository.stored_events(session, found)}
                for index, event in enumerate(events):
                    row = stored.get(event["id"])
                    if row is not None:
                        application_ingest.require_same_content(index, event, row)
                        sequences[event["id"]] = int(row.sequence or 0)
            new = [event for event in events if event["id"] not in sequences]
            appended = await chain_and_insert(session, self._chain_key, scope, new, (sequence, previous))
            sequences.update(zip((event["id"] for event in new), appended, strict=True))
        return [(event["id"], sequences[event["id"]]) for event in events]

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
