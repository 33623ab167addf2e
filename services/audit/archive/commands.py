"""The audit service's operator commands (see kit/cli.py): run retention now, restore a month, see the runs.

python -m services.audit run-retention
python -m services.audit restore-month 2026-01 [--hold-days 7]
python -m services.audit retention-status
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar

from kit.cli import Command
from kit.db import Database
from kit.settings import ServiceSettings
from services.audit.archive.manifest import ArchiveProblem
from services.audit.archive.restore import restore_month
from services.audit.archive.retention import DISABLED, FAILED, Retention
from services.audit.archive.stretch import StretchReader
from services.audit.checkpoints import CheckpointKey, CheckpointLog
from services.audit.models import DB_ROLE
from services.audit.settings import AuditSettings

T = TypeVar("T")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def retention_of_settings(settings: AuditSettings, database: Database, checkpoints: CheckpointLog) -> Retention:
    chain_key = settings.audit_chain_key.get_secret_value().encode()
    return Retention(
        database,
        StretchReader(database, chain_key, checkpoints),
        chain_key=chain_key,
        key=checkpoints.key,
        archive_dir=settings.archive_dir,
        platform_default=settings.retention_months,
    )


def _with_database(
    settings: ServiceSettings, work: Callable[[AuditSettings, Database, CheckpointLog], Awaitable[T]]
) -> T:
    assert isinstance(settings, AuditSettings)

    async def run() -> T:
        database = Database(settings.database_url, role=DB_ROLE, pool_size=2)
        key = CheckpointKey.load_or_create(settings.checkpoint_key_path)
        try:
            return await work(settings, database, CheckpointLog(settings.audit_data_dir / "checkpoints", key))
        finally:
            await database.dispose()

    return asyncio.run(run())


def run_retention(settings: ServiceSettings, args: list[str]) -> None:
    if args:
        raise SystemExit("usage: python -m services.audit run-retention")

    async def work(settings: AuditSettings, database: Database, checkpoints: CheckpointLog) -> list[str]:
        outcomes = await retention_of_settings(settings, database, checkpoints).run()
        for outcome in outcomes:
            print(f"{outcome.outcome}: {outcome.message}")
        return [outcome.outcome for outcome in outcomes]

    if set(_with_database(settings, work)) & {FAILED, DISABLED}:
        raise SystemExit(1)


def restore(settings: ServiceSettings, args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.audit restore-month")
    parser.add_argument("month", help="YYYY-MM")
    parser.add_argument("--hold-days", type=int, default=7, help="days retention leaves it in place (default 7)")
    parsed = parser.parse_args(args)
    found = _MONTH.fullmatch(parsed.month)
    if found is None or not 1 <= int(found.group(2)) <= 12 or not 1 <= parsed.hold_days <= 3650:
        raise SystemExit("restore-month: MONTH is YYYY-MM and --hold-days 1 to 3650")
    month = date(int(found.group(1)), int(found.group(2)), 1)

    async def work(settings: AuditSettings, database: Database, checkpoints: CheckpointLog) -> int:
        if settings.archive_dir is None:
            raise SystemExit("restore-month: AUDIT_ARCHIVE_DIR is not set")
        chain_key = settings.audit_chain_key.get_secret_value().encode()
        try:
            return await restore_month(
                database, settings.archive_dir, month, chain_key, checkpoints.key, parsed.hold_days
            )
        except ArchiveProblem as problem:
            raise SystemExit(f"restore-month: nothing restored: {problem}") from None

    inserted = _with_database(settings, work)
    print(
        f"restored {parsed.month}: {inserted} events back in the trail, held from retention for {parsed.hold_days} days"
    )


def status(settings: ServiceSettings, args: list[str]) -> None:
    async def work(settings: AuditSettings, database: Database, checkpoints: CheckpointLog) -> None:
        for finished, month, outcome, message in await retention_of_settings(
            settings, database, checkpoints
        ).recent_runs():
            when = finished.isoformat(timespec="seconds")
            print(f"{when} {month.isoformat()[:7] if month else '-------'} {outcome}: {message}")

    _with_database(settings, work)


COMMANDS: dict[str, Command] = {"run-retention": run_retention, "restore-month": restore, "retention-status": status}
