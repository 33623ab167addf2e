"""A stretch of one scope's chain as export lines: signed start, events re-hashed as they go, signed end.

The same lines make an export (streamed to the caller) and a month's archive
(written to a file). Every event is hashed again from the very message that
goes out (`chain_values`: its stored values, in the chain format it was
hashed in) with the chain's own `link`, so a file that leaves the service
verifies offline with the same code, and a stretch altered in the database is never signed.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

import grpc
from tenantry.audit.v1 import audit_export_service_pb2, audit_pb2

from kit.db import Database
from kit.errors import DomainError
from services.audit import chain, repository
from services.audit.api import to_checkpoint
from services.audit.archive import queries
from services.audit.chain import ChainLink
from services.audit.checkpoints import ALGORITHM, Checkpoint, CheckpointKey, CheckpointLog, signed_payload
from services.audit.event_model import chain_values, stored_event

PAGE = 1000
Line = audit_export_service_pb2.AuditExportLine


class ChainDamaged(DomainError):
    """The stored chain does not recompute: nothing more is exported or signed."""

    code = grpc.StatusCode.DATA_LOSS


@dataclass(frozen=True)
class Stretch:
    """Sequences (after, through] of a scope's chain; empty when through <= after."""

    scope: str
    after: ChainLink
    through: int


def sign(key: CheckpointKey, scope: str, link: ChainLink) -> Checkpoint:
    """A checkpoint of link, signed now; exports do not add it to the checkpoint log."""
    created_at = datetime.now(UTC)
    payload = signed_payload(scope, link.sequence, link.chain_hash, created_at)
    return Checkpoint(scope, link.sequence, link.chain_hash, created_at, key.key_id, key.sign(payload))


class StretchReader:
    def __init__(self, database: Database, chain_key: bytes, checkpoints: CheckpointLog) -> None:
        self._database = database
        self._chain_key = chain_key
        self._checkpoints = checkpoints
        key = checkpoints.key
        self._public_key = audit_pb2.AuditCheckpointKey(
            key_id=key.key_id, algorithm=ALGORITHM, public_key=key.public_key
        )

    async def by_time(self, scope: str, start_time: datetime | None, end_time: datetime | None) -> Stretch:
        """From the first event created at or after start_time to the last created before end_time
        (or the head as it is now): the chain between them, whatever their own times."""
        async with self._database.unit_of_work(scope=scope) as session:
            head = await repository.chain_head(session, scope)
            resumes = await queries.archived_start(session, scope)
            first = await queries.sequence_bound(session, scope, start_time=start_time, end_time=end_time, lowest=True)
            if end_time is None:
                last = head.sequence
            else:
                last = (
                    await queries.sequence_bound(session, scope, start_time=start_time, end_time=end_time, lowest=False)
                    or 0
                )
            last = min(last, head.sequence)
            # Archived months left the database: the stretch starts where the live chain resumes.
            first = None if first is None else max(first, resumes.sequence + 1)
            if first is None or first > last:
                return Stretch(scope, head, head.sequence)
            after = await queries.link_at(session, scope, first - 1)
        if after is None:
            raise ChainDamaged(f"the chain has no event {first - 1} before the export's first event")
        return Stretch(scope, after, last)

    async def lines(self, stretch: Stretch) -> AsyncIterator[Line]:
        """The stretch's lines; pages of PAGE events, each read in its own short transaction
        (stored events never change, so the pages make one consistent stretch)."""
        scope, key = stretch.scope, self._checkpoints.key
        pinned = {checkpoint.sequence: checkpoint for checkpoint in (await self._checkpoints.read(scope)).checkpoints}
        yield Line(start=to_checkpoint(sign(key, scope, stretch.after)))
        previous, count = stretch.after, 0
        while previous.sequence < stretch.through:
            async with self._database.unit_of_work(scope=scope) as session:
                rows = await repository.chain_page(
                    session, scope, after_sequence=previous.sequence, through_sequence=stretch.through, limit=PAGE
                )
            if not rows:
                raise ChainDamaged(f"the chain ends at {previous.sequence}, before {stretch.through}")
            for row in rows:
                event, chain_format = stored_event(SimpleNamespace(**row)), row["chain_format"]
                expected = previous.sequence + 1
                stored = bytes(row["chain_hash"] or b"")
                computed = chain.link(self._chain_key, previous.chain_hash, chain_values(event, chain_format), expected)
                checkpoint = pinned.get(expected)
                if row["sequence"] != expected:
                    raise ChainDamaged(f"sequence gap: expected {expected}, found {row['sequence']}")
                if not hmac.compare_digest(computed, stored):
                    raise ChainDamaged(f"hash mismatch at sequence {expected}")
                if checkpoint is not None and not hmac.compare_digest(checkpoint.head_hash, stored):
                    raise ChainDamaged(f"sequence {expected} differs from its signed checkpoint")
                previous, count = ChainLink(expected, stored), count + 1
                yield Line(event=event, chain_hash=stored.hex(), chain_format=chain_format)
        end = audit_export_service_pb2.AuditExportEnd(
            events=count, checkpoint=to_checkpoint(sign(key, scope, previous)), checkpoint_key=self._public_key
        )
        yield Line(end=end)
