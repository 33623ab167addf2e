"""Verifying a scope's hash chain against its head and its signed checkpoints."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import chain, repository
from services.audit.chain import START, ChainLink
from services.audit.checkpoints import Checkpoint, ScopeLog

VERIFY_PAGE = 1000
# What chain.link hashes of a stored event (kept under this name for callers of the first model).
EVENT_COLUMNS = chain.EVENT_FIELDS


@dataclass(frozen=True)
class Verification:
    intact: bool
    events_checked: int
    first_broken_event_id: str = ""
    first_broken_sequence: int = 0
    problem: str = ""
    # The newest signed checkpoint, for the caller to keep.
    checkpoint: Checkpoint | None = None


def _when(checkpoint: Checkpoint) -> str:
    return checkpoint.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def walk(
    session: AsyncSession,
    chain_key: bytes,
    scope: str,
    *,
    start: ChainLink,
    through: int,
    pinned: Mapping[int, Checkpoint] | None = None,
) -> ChainLink | Verification:
    """Recomputes each link after start up to sequence through.

    Returns the last link reached (short of through if events are missing at
    the end), or a broken Verification at the first event out of place,
    including one whose hash differs from a checkpoint signed for it."""
    pinned = pinned or {}
    previous, expected = start.chain_hash, start.sequence + 1
    while expected <= through:
        page = await repository.chain_page(
            session, scope, after_sequence=expected - 1, through_sequence=through, limit=VERIFY_PAGE
        )
        if not page:
            break
        for row in page:
            problem, checkpoint = "", pinned.get(expected)
            stored_hash = row["chain_hash"]
            if row["sequence"] != expected:
                problem = f"sequence gap: expected {expected}"
            elif stored_hash is None or not hmac.compare_digest(
                chain.link(chain_key, previous, row, expected), bytes(stored_hash)
            ):
                problem = "hash mismatch"
            elif checkpoint is not None and not hmac.compare_digest(checkpoint.head_hash, bytes(stored_hash)):
                problem = f"hash differs from the checkpoint signed at {_when(checkpoint)}"
            if problem:
                return Verification(False, expected - 1, str(row["id"]), row["sequence"] or 0, problem)
            previous, expected = bytes(stored_hash), expected + 1
    return ChainLink(expected - 1, previous)


async def verify_chain(
    session: AsyncSession, chain_key: bytes, scope: str, head: ChainLink, log: ScopeLog, *, start: ChainLink = START
) -> Verification:
    """The chain from start (its beginning, or where archived months end) up to head, which must
    end where head and the newest checkpoint say."""
    if log.problem:
        return Verification(False, 0, problem=log.problem, checkpoint=log.latest)
    pinned = {checkpoint.sequence: checkpoint for checkpoint in log.checkpoints}
    end = await walk(session, chain_key, scope, start=start, through=head.sequence, pinned=pinned)
    if isinstance(end, Verification):
        return replace(end, checkpoint=log.latest)
    if end.sequence != head.sequence:
        problem = f"the chain ends at {end.sequence} but its head is {head.sequence}"
        return Verification(False, end.sequence, "", end.sequence + 1, problem, log.latest)
    if not hmac.compare_digest(end.chain_hash, head.chain_hash):
        problem = f"the chain head's hash is not that of event {head.sequence}"
        return Verification(False, end.sequence, "", head.sequence, problem, log.latest)
    latest = log.latest
    if latest is not None and latest.sequence > head.sequence:
        # The chain is consistent but shorter than it was: its newest events
        # were removed and the head rewound, or the head alone rewound.
        problem = (
            f"the chain ends at {head.sequence} but the checkpoint signed at {_when(latest)} "
            f"covers sequence {latest.sequence}"
        )
        return Verification(False, end.sequence, "", head.sequence + 1, problem, latest)
    return Verification(True, end.sequence, checkpoint=latest)
