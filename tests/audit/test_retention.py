"""Retention: a month past retention is archived, verified and only then dropped; failures drop nothing; restores."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from tenantry.audit.v1 import audit_export_service_pb2, audit_export_service_pb2_grpc, audit_pb2

from devtools.stack import service_env
from kit.db import Database
from kit.settings import asyncpg_url
from services.audit import chain
from services.audit.archive.lines import NDJSON, Encoder
from services.audit.archive.stretch import StretchReader
from services.audit.checkpoints import CheckpointKey, CheckpointLog
from services.audit.service import AuditTrail
from tests.audit.exports import audit_command, verify_export
from tests.audit.tampering import (
    append,
    append_as_before_the_model_grew,
    append_as_stored,
    as_superuser_behind_the_triggers,
    event,
    verify,
)
from tests.stack import AUDIT_CHAIN_KEY, GATEWAY_TOKEN, INTERNAL_API_TOKEN, Stack, bearer, own_stack, rpc_error

JANUARY, FEBRUARY = datetime(2025, 1, 10, tzinfo=UTC), datetime(2025, 2, 10, tzinfo=UTC)


@pytest.fixture
def fresh(fresh_database, tmp_path: Path) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with own_stack(fresh_database(), tmp_path) as running:
        yield running


def events_at(stack: Stack, tenant_id: str, when: datetime, count: int) -> None:
    items = [event(tenant_id) for _ in range(count)]
    for item in items:
        item.created_at.FromDatetime(when)
    append(stack, *items)


def operator(stack: Stack, archive_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """python -m services.audit COMMAND as an operator runs it, beside the running service."""
    addresses = {name: process.address for name, process in stack.processes.items()}
    environment = {
        **service_env(
            stack.database_url,
            INTERNAL_API_TOKEN,
            addresses,
            audit_chain_key=AUDIT_CHAIN_KEY,
            audit_data_dir=stack.audit_data_dir,
            gateway_token=GATEWAY_TOKEN,
        ),
        "AUDIT_ARCHIVE_DIR": str(archive_dir),
        "AUDIT_RETENTION_MONTHS": "12",
        **env,
    }
    return audit_command(list(args), environment)


def partition_exists(stack: Stack, month: str) -> bool:
    return bool(stack.sql("SELECT to_regclass(%s) IS NOT NULL", (f"audit.events_{month}",))[0][0])


def visible_events(stack: Stack, tenant_id: str) -> int:
    """What the service's runtime role reads in the tenant's scope (row-level security on)."""
    rows = stack.sql(
        "SELECT count(*) FROM audit.events WHERE tenant_id = %s", (tenant_id,), role="tenantry_audit", tenant=tenant_id
    )
    return int(rows[0][0])


def verify_in_process(stack: Stack, scope: str, tmp_path: Path) -> tuple[bool, str, int]:
    """VerifyAuditTrail's own code for a scope no token can name (a tenant id without a tenant)."""

    async def run() -> tuple[bool, str, int]:
        database = Database(asyncpg_url(stack.database_url), role="tenantry_audit", pool_size=1)
        key = CheckpointKey.load_or_create(tmp_path / "verify-key.pem")
        trail = AuditTrail(
            database,
            months_ahead=1,
            chain_key=AUDIT_CHAIN_KEY.encode(),
            checkpoints=CheckpointLog(tmp_path / "cp", key),
        )
        try:
            async with database.unit_of_work(scope=scope) as session:
                result = await trail.verify(session, scope)
            return result.intact, result.problem, result.events_checked
        finally:
            await database.dispose()

    return asyncio.run(run())


def export_in_process(stack: Stack, scope: str, tmp_path: Path) -> Path:
    """ExportAuditEvents' own code for a scope no token can name, written as the gateway would."""

    async def run() -> bytes:
        database = Database(asyncpg_url(stack.database_url), role="tenantry_audit", pool_size=1)
        key = CheckpointKey.load_or_create(stack.audit_data_dir / "checkpoint-signing-key.pem")
        reader = StretchReader(database, AUDIT_CHAIN_KEY.encode(), CheckpointLog(tmp_path / "export-cp", key))
        encoder = Encoder(NDJSON)
        try:
            stretch = await reader.by_time(scope, None, None)
            return b"".join([encoder.encode(line) async for line in reader.lines(stretch)])
        finally:
            await database.dispose()

    path = tmp_path / f"{scope}.ndjson"
    path.write_bytes(asyncio.run(run()))
    return path


def test_a_month_past_retention_is_archived_verified_dropped_and_can_be_restored(fresh: Stack, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    events_at(fresh, tenant, JANUARY, 4)
    events_at(fresh, other, JANUARY, 2)
    events_at(fresh, tenant, FEBRUARY, 3)
    events_at(fresh, tenant, datetime.now(UTC), 2)

    ran = operator(fresh, archive, "run-retention")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "dropped: 2025-01: 6 events of 2 trails" in ran.stdout
    assert "dropped: 2025-02: 3 events of 1 trails" in ran.stdout
    assert "nothing_due" in ran.stdout
    assert not partition_exists(fresh, "2025_01") and not partition_exists(fresh, "2025_02")

    # The archive: a signed manifest and a file per trail, which the auditor's command verifies.
    manifest = json.loads((archive / "2025-01" / "manifest.json").read_text())
    files = {entry["scope"]: entry for entry in manifest["manifest"]["files"]}
    assert files[tenant]["events"] == 4 and files[other]["events"] == 2
    assert files[tenant]["first_sequence"] == 1 and files[tenant]["last_sequence"] == 4
    checked = verify_export(archive / "2025-01" / f"{tenant}.jsonl.gz", "--public-key", manifest["public_key"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The live chain resumes where the archives end, and verifies from there.
    intact, problem, checked_events = verify_in_process(fresh, tenant, tmp_path)
    assert intact, problem
    assert checked_events == 9
    assert visible_events(fresh, tenant) == 2
    # An export of what is left starts from the archived link, signed, and verifies offline.
    exported = export_in_process(fresh, tenant, tmp_path)
    assert json.loads(exported.read_text().splitlines()[0])["start"]["sequence"] == "7"
    assert verify_export(exported, "--public-key", manifest["public_key"]).returncode == 0

    status = operator(fresh, archive, "retention-status")
    assert "dropped: 2025-01" in status.stdout

    restored = operator(fresh, archive, "restore-month", "2025-01", "--hold-days", "3")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored 2025-01: 6 events" in restored.stdout
    assert visible_events(fresh, tenant) == 6
    assert visible_events(fresh, other) == 2
    # Read under its own tenant only: another scope's binding sees none of them.
    assert int(fresh.sql("SELECT count(*) FROM audit.events", role="tenantry_audit", tenant=other)[0][0]) == 2
    assert verify_in_process(fresh, tenant, tmp_path)[0]

    again = operator(fresh, archive, "restore-month", "2025-01")
    assert "restored 2025-01: 0 events" in again.stdout
    held = operator(fresh, archive, "run-retention")
    assert "held: 2025-01 is restored for queries" in held.stdout
    assert partition_exists(fresh, "2025_01")


def test_nothing_is_dropped_when_the_archive_cannot_be_written(fresh: Stack, tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())
    events_at(fresh, tenant, JANUARY, 3)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    ran = operator(fresh, blocker / "archive", "run-retention")
    assert ran.returncode == 1
    assert "failed: archive of 2025-01 could not be written" in ran.stdout and "nothing dropped" in ran.stdout
    assert partition_exists(fresh, "2025_01")
    assert visible_events(fresh, tenant) == 3
    status = operator(fresh, blocker / "archive", "retention-status")
    assert "failed: archive of 2025-01 could not be written" in status.stdout


def test_nothing_is_dropped_when_the_chain_or_the_archive_does_not_verify(fresh: Stack, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    tenant = str(uuid.uuid4())
    events_at(fresh, tenant, JANUARY, 3)
    as_superuser_behind_the_triggers(
        fresh, "UPDATE audit.events SET resource_id = 'rewritten' WHERE tenant_id = %s AND sequence = 2", (tenant,)
    )
    ran = operator(fresh, archive, "run-retention")
    assert ran.returncode == 1 and "hash mismatch at sequence 2; nothing dropped" in ran.stdout, ran.stdout
    assert partition_exists(fresh, "2025_01")
    assert not (archive / "2025-01" / "manifest.json").exists()

    # Put right, archived; then the archive damaged on disk before a run: still nothing dropped.
    as_superuser_behind_the_triggers(
        fresh, "UPDATE audit.events SET resource_id = '1' WHERE tenant_id = %s AND sequence = 2", (tenant,)
    )
    second = str(uuid.uuid4())
    events_at(fresh, second, FEBRUARY, 2)
    damaged = archive / "2025-02"
    ok = operator(fresh, archive, "run-retention", AUDIT_RETENTION_MONTHS="12")
    assert "dropped: 2025-01" in ok.stdout and "dropped: 2025-02" in ok.stdout, ok.stdout
    # A month archived earlier whose file was then altered is not dropped again after a restore.
    assert operator(fresh, archive, "restore-month", "2025-02", "--hold-days", "1").returncode == 0
    fresh.sql("UPDATE audit.restored_months SET hold_until = now() - interval '1 second'")
    path = damaged / f"{second}.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)
    lines[1] = lines[1].replace('"resource_id":"1"', '"resource_id":"9"')
    path.write_bytes(gzip.compress("".join(lines).encode()))
    refused = operator(fresh, archive, "run-retention")
    assert refused.returncode == 1 and "does not have the SHA-256 its manifest lists" in refused.stdout
    assert partition_exists(fresh, "2025_02")
    restore = operator(fresh, archive, "restore-month", "2025-01")
    assert restore.returncode == 0  # the undamaged month still restores


def test_a_trail_keeping_its_events_longer_keeps_the_month(fresh: Stack, tmp_path: Path) -> None:
    short, long = str(uuid.uuid4()), str(uuid.uuid4())
    events_at(fresh, short, JANUARY, 2)
    events_at(fresh, long, JANUARY, 2)
    fresh.sql("INSERT INTO audit.retention_policies (scope, months) VALUES (%s, 600)", (long,))
    ran = operator(fresh, tmp_path / "archive", "run-retention")
    assert ran.returncode == 0
    assert f"nothing_due: 2025-01 is kept: {long} keeps 600 months" in ran.stdout
    assert partition_exists(fresh, "2025_01")
    fresh.sql("DELETE FROM audit.retention_policies")
    forever = operator(fresh, tmp_path / "archive", "run-retention", AUDIT_RETENTION_MONTHS="0")
    assert "keeps forever" in forever.stdout and partition_exists(fresh, "2025_01")


def test_a_month_that_does_not_start_its_trails_live_chain_is_not_dropped(fresh: Stack, tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())
    events_at(fresh, tenant, datetime.now(UTC), 2)
    events_at(fresh, tenant, JANUARY, 2)  # delivered late: sequences 3 and 4
    ran = operator(fresh, tmp_path / "archive", "run-retention")
    assert ran.returncode == 1 and "are not the start of its live chain" in ran.stdout, ran.stdout
    assert partition_exists(fresh, "2025_01")


def test_a_tenant_sets_its_retention_and_the_change_is_in_its_trail(stack: Stack) -> None:
    tenant = stack.create_tenant("retention")
    stub = audit_export_service_pb2_grpc.AuditExportServiceStub(stack.channels["audit"])
    owner = bearer(tenant.owner_token)
    assert stub.GetAuditRetention(audit_export_service_pb2.GetAuditRetentionRequest(), metadata=owner).months == 0
    changed = stub.UpdateAuditRetention(audit_export_service_pb2.UpdateAuditRetentionRequest(months=24), metadata=owner)
    assert (changed.months, changed.effective_months) == (24, 24)
    assert stub.GetAuditRetention(audit_export_service_pb2.GetAuditRetentionRequest(), metadata=owner).months == 24
    error = rpc_error(
        lambda: stub.UpdateAuditRetention(
            audit_export_service_pb2.UpdateAuditRetentionRequest(months=-1), metadata=owner
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "months" in (error.details() or "")
    viewer = stack.add_member(tenant, f"viewer-{uuid.uuid4().hex[:6]}@example.test", role="viewer")
    denied = rpc_error(
        lambda: stub.UpdateAuditRetention(
            audit_export_service_pb2.UpdateAuditRetentionRequest(months=1), metadata=bearer(viewer.access_token)
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    changes = stack.audit_events(tenant.owner_token, action="audit.retention.updated")
    assert changes
    # An event of the grown model: an admin change, by the owner, to the tenant's retention.
    change = changes[0]
    assert (change.category, change.outcome, change.target_type, change.target_id) == (
        audit_pb2.AUDIT_CATEGORY_ADMIN,
        audit_pb2.AUDIT_OUTCOME_SUCCESS,
        "audit_retention",
        tenant.id,
    )
    assert change.actor_type == audit_pb2.AUDIT_ACTOR_TYPE_USER and change.actor_id == change.user_id != ""
    assert change.details["months"] == 24
    assert verify(stack, tenant.owner_token).intact


def test_events_of_both_chain_formats_are_restored_with_their_sequence_format_and_hash(
    fresh: Stack, tmp_path: Path
) -> None:
    archive, tenant = tmp_path / "archive", str(uuid.uuid4())
    events_at(fresh, tenant, JANUARY, 2)
    append_as_before_the_model_grew(fresh, tenant, JANUARY)
    lifted = event(tenant, "user.login_failed")
    lifted.user_id = str(uuid.uuid4())
    lifted.details.update({"category": "auth", "outcome": "failure", "reason": "bad_password"})
    lifted.created_at.FromDatetime(JANUARY)
    append(fresh, lifted)
    append_as_stored(fresh, tenant, user_id=uuid.uuid4(), details={"category": "auth"}, created_at=JANUARY)
    events_at(fresh, tenant, datetime.now(UTC), 1)
    stored = (
        f"SELECT {', '.join([*chain.EVENT_FIELDS, 'sequence', 'chain_hash'])} FROM audit.events"
        " WHERE tenant_id = %s AND created_at < '2025-02-01' ORDER BY sequence"
    )
    before = fresh.sql(stored, (tenant,))
    assert [row[chain.EVENT_FIELDS.index("chain_format")] for row in before] == [2, 2, 1, 2, 2]

    ran = operator(fresh, archive, "run-retention")
    assert "dropped: 2025-01: 5 events of 1 trails" in ran.stdout, ran.stdout + ran.stderr
    assert fresh.sql(stored, (tenant,)) == []
    restored = operator(fresh, archive, "restore-month", "2025-01")
    assert "restored 2025-01: 5 events" in restored.stdout, restored.stdout + restored.stderr
    # Every column as it was, the chain format and the hash included; nothing lifted again.
    assert fresh.sql(stored, (tenant,)) == before
    intact, problem, _ = verify_in_process(fresh, tenant, tmp_path)
    assert intact, problem
