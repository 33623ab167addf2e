"""Restoring an archived month for queries: the verified archive goes back into its partition.

The month's partition is made again and each scope's events are inserted
under that scope's binding (the same insert policy as ingest), by the ingest
path's own statements with the chain head locked and left where it is: the
events keep their sequence, chain format and hash (the documents carry them),
reads and exports see them under the usual row-level security, and the live
chain is untouched. A restored month is held from retention for the days
asked; afterwards the next run finds its
archive, checks the partition against it again, and drops it again. Restoring
twice inserts nothing twice (the stored events are left out, as on ingest).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text

from kit.db import Database
from services.audit import chain, repository
from services.audit.archive.lines import NDJSON, Line, read_lines
from services.audit.archive.manifest import month_dir, read_archive
from services.audit.archive.verify_command import open_text
from services.audit.checkpoints import CheckpointKey
from services.audit.event_model import chain_values, time_of

BATCH = 500


def _events(path: Path) -> Iterator[list[Line]]:
    batch: list[Line] = []
    with open_text(path, compressed=True) as file:
        for _, line in read_lines(file, NDJSON):
            if line.WhichOneof("line") == "event":
                batch.append(line)
                if len(batch) == BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


async def restore_month(
    database: Database, archive_dir: Path, month: date, chain_key: bytes, key: CheckpointKey, hold_days: int
) -> int:
    """Loads the month's verified archive back; the number of events inserted (ArchiveProblem if it does not verify)."""
    directory = month_dir(archive_dir, month)
    archived = read_archive(directory, chain_key, key)
    async with database.unit_of_work(scope="") as session:
        await repository.ensure_monthly_partitions(session, month, 1)
    inserted = 0
    for entry in archived:
        for batch in _events(directory / entry.file):
            # Each event goes back as the document ingest stored it from, with its own sequence,
            # chain format and hash (the archive verified, so these are the chain's).
            documents = {
                line.event.id: chain.stored_document(
                    chain_values(line.event, line.chain_format), line.event.sequence, bytes.fromhex(line.chain_hash)
                )
                for line in batch
            }
            created = [time_of(line.event.created_at).isoformat(timespec="microseconds") for line in batch]
            async with database.unit_of_work(scope="") as session:
                head, head_hash, stored = await repository.open_chain_for_append(
                    session, entry.scope, list(documents), created
                )
                fresh = [document for event_id, document in documents.items() if event_id not in stored]
                if fresh:
                    await repository.insert_events(session, entry.scope, fresh, (head, head_hash))
                    inserted += len(fresh)
    async with database.unit_of_work(scope="") as session:
        await session.execute(
            text(
                "INSERT INTO audit.restored_months (month, hold_until) VALUES (:month, now() + :hold) "
                "ON CONFLICT (month) DO UPDATE SET restored_at = now(), hold_until = excluded.hold_until"
            ),
            {"month": month, "hold": timedelta(days=hold_days)},
        )
    return inserted
