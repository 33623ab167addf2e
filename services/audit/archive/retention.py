"""The retention run: each month past every retention in it is archived, verified, and only then dropped.

Months are partitions shared by every tenant, and events cannot be deleted
one by one (the trail is append-only, by trigger), so a month leaves the
database whole, once it is past the retention of every scope with events in
it (a tenant's own, else AUDIT_RETENTION_MONTHS; 0 keeps it forever). Months
go oldest first, and a month is archived only if it holds the start of each
of its scopes' live chains, so the chain left behind resumes exactly where the
archive ends (`audit.archived_links`). Nothing is dropped unless the archive
was written, read back, and verified against its signed manifest, and the
partition still holds exactly what was archived (checked again, under lock,
by `audit.drop_archived_month`). Any failure drops nothing and is recorded in
`audit.retention_runs` (`python -m services.audit retention-status`) and logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import Database
from services.audit.archive import queries
from services.audit.archive.manifest import (
    MANIFEST,
    ArchiveProblem,
    ScopeFile,
    month_dir,
    month_name,
    read_archive,
    scope_file_of,
    write_manifest,
    write_scope_file,
)
from services.audit.archive.retention_policy import retention_of
from services.audit.archive.stretch import ChainDamaged, Stretch, StretchReader
from services.audit.checkpoints import CheckpointKey

log = logging.getLogger(__name__)

DROPPED, NOTHING_DUE, HELD, FAILED, SKIPPED, DISABLED = (
    "dropped",
    "nothing_due",
    "held",
    "failed",
    "skipped",
    "disabled",
)


@dataclass(frozen=True)
class Outcome:
    month: date | None
    outcome: str
    message: str


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


async def bind_retention(session: AsyncSession) -> None:
    """The binding under which the run sees every scope's events of a month (migration 0007)."""
    await session.execute(text("SELECT set_config('app.audit_retention', 'on', true)"))


class Retention:
    def __init__(
        self,
        database: Database,
        stretches: StretchReader,
        *,
        chain_key: bytes,
        key: CheckpointKey,
        archive_dir: Path | None,
        platform_default: int,
    ) -> None:
        self._database = database
        self._stretches = stretches
        self._chain_key = chain_key
        self._key = key
        self._archive_dir = archive_dir
        self._default = platform_default

    async def run(self, today: date | None = None) -> list[Outcome]:
        """Every month due, oldest first, until one is not due or fails; one replica at a time."""
        if self._archive_dir is None:
            return [Outcome(None, DISABLED, "AUDIT_ARCHIVE_DIR is not set: nothing is archived or dropped")]
        current = (today or datetime.now(UTC).date()).replace(day=1)
        started = datetime.now(UTC)
        async with self._database.unit_of_work(scope="") as lock:
            # Held until this transaction ends, so another replica's run skips.
            if not (await lock.execute(text("SELECT pg_try_advisory_xact_lock(hashtext('audit.retention'))"))).scalar():
                return [Outcome(None, SKIPPED, "another replica is running retention")]
            outcomes = []
            for month in await self._partition_months():
                outcome = await self._month(month, current)
                outcomes.append(outcome)
                await self._record(started, outcome)
                if outcome.outcome not in (DROPPED, HELD):
                    break
            if not outcomes:
                outcomes.append(Outcome(None, NOTHING_DUE, "no partitions"))
            return outcomes

    async def _partition_months(self) -> list[date]:
        async with self._database.unit_of_work(scope="") as session:
            names = await session.execute(
                text(
                    "SELECT child.relname FROM pg_inherits JOIN pg_class AS child ON child.oid = inhrelid "
                    "WHERE inhparent = 'audit.events'::regclass ORDER BY 1"
                )
            )
            return [date(int(name[7:11]), int(name[12:14]), 1) for (name,) in names]

    async def _month(self, month: date, current: date) -> Outcome:
        assert self._archive_dir is not None
        async with self._database.unit_of_work(scope="") as session:
            await bind_retention(session)
            scopes = await queries.month_scopes(session, month)
            policies = await retention_of(session)
            held = (
                await session.execute(
                    text("SELECT hold_until FROM audit.restored_months WHERE month = :month AND hold_until > now()"),
                    {"month": month},
                )
            ).scalar_one_or_none()
        if held is not None:
            return Outcome(month, HELD, f"{month_name(month)} is restored for queries until {held.isoformat()}")
        for scope in [name for name, *_ in scopes] or [""]:
            months = policies.get(scope) or self._default
            if months == 0 or add_months(month, 1 + months) > current:
                keeps = "forever" if months == 0 else f"{months} months"
                return Outcome(
                    month, NOTHING_DUE, f"{month_name(month)} is kept: {scope or 'the platform'} keeps {keeps}"
                )
        try:
            directory = month_dir(self._archive_dir, month)
            if not (directory / MANIFEST).exists():
                await self._write(directory, month, scopes)
            archived = read_archive(directory, self._chain_key, self._key)
            self._compare(month, archived, scopes)
            dropped = await self._drop(month, archived)
        except (ArchiveProblem, ChainDamaged) as problem:
            return self._failed(month, f"archive of {month_name(month)} failed: {problem}; nothing dropped")
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""
            return self._failed(
                month, f"archive of {month_name(month)} could not be written: {error.strerror}{where}; nothing dropped"
            )
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", error)).splitlines()[0][:300]
            return self._failed(month, f"{month_name(month)} was archived but not dropped: {reason}")
        message = f"{month_name(month)}: {dropped} events of {len(archived)} trails archived to {directory}, dropped"
        log.info("audit month archived and dropped", extra={"month": month_name(month), "events": dropped})
        return Outcome(month, DROPPED, message)

    @staticmethod
    def _failed(month: date, message: str) -> Outcome:
        log.error("audit retention: " + message, extra={"month": month_name(month)})
        return Outcome(month, FAILED, message)

    async def _write(self, directory: Path, month: date, scopes: list[tuple[str, int, int, int]]) -> None:
        files = []
        for scope, count, first, last in scopes:
            async with self._database.unit_of_work(scope=scope) as session:
                resumes = await queries.archived_start(session, scope)
            if first != resumes.sequence + 1 or count != last - first + 1:
                raise ArchiveProblem(
                    f"{scope}'s events of the month are not the start of its live chain (sequences {first}..{last},"
                    f" {count} events, the chain resumes at {resumes.sequence + 1})"
                )
            lines = self._stretches.lines(Stretch(scope, resumes, last))
            path = await write_scope_file(directory, scope, lines)
            files.append(scope_file_of(path, self._chain_key, self._key))
        write_manifest(directory, month, files, self._key)

    @staticmethod
    def _compare(month: date, archived: list[ScopeFile], scopes: list[tuple[str, int, int, int]]) -> None:
        held = {(entry.scope, entry.events, entry.first_sequence, entry.last_sequence) for entry in archived}
        if held != set(scopes):
            raise ArchiveProblem(f"the archive of {month_name(month)} does not hold what the partition holds")

    async def _drop(self, month: date, archived: list[ScopeFile]) -> int:
        async with self._database.unit_of_work(scope="") as session:
            await bind_retention(session)
            for entry in archived:
                await session.execute(
                    text(
                        "INSERT INTO audit.archived_links (scope, sequence, chain_hash, month) "
                        "VALUES (:scope, :sequence, :hash, :month) ON CONFLICT DO NOTHING"
                    ),
                    {
                        "scope": entry.scope,
                        "sequence": entry.last_sequence,
                        "hash": bytes.fromhex(entry.last_hash),
                        "month": month,
                    },
                )
            expected = json.dumps({entry.scope: entry.events for entry in archived})
            dropped = await session.execute(
                text("SELECT audit.drop_archived_month(:month, CAST(:expected AS jsonb))"),
                {"month": month, "expected": expected},
            )
            return int(dropped.scalar_one())

    async def _record(self, started: datetime, outcome: Outcome) -> None:
        async with self._database.unit_of_work(scope="") as session:
            await session.execute(
                text(
                    "INSERT INTO audit.retention_runs (started_at, month, outcome, message) "
                    "VALUES (:started, :month, :outcome, :message)"
                ),
                {"started": started, "month": outcome.month, "outcome": outcome.outcome, "message": outcome.message},
            )

    async def recent_runs(self, limit: int = 20) -> list[tuple[datetime, date | None, str, str]]:
        async with self._database.unit_of_work(scope="") as session:
            rows = await session.execute(
                text(
                    "SELECT finished_at, month, outcome, message FROM audit.retention_runs "
                    "ORDER BY id DESC LIMIT :limit"
                ),
                {"limit": limit},
            )
            return [(row[0], row[1], row[2], row[3]) for row in rows]
