"""Exports of a tenant's trail: streamed through the gateway in bounded memory, verified offline, tampering found."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import requests
from google.protobuf.timestamp_pb2 import Timestamp

from tests.audit.exports import download, export_lines, fill, peak_rss_growth, public_key, verify_export
from tests.audit.tampering import (
    append,
    append_as_before_the_model_grew,
    append_as_stored,
    as_superuser_behind_the_triggers,
    event,
    event_at,
)
from tests.gateway.conftest import start_gateway, tenantry_gateway_env
from tests.stack import Stack, Tenant, eventually, rpc_error

LARGE = 100_000


@pytest.fixture(scope="module")
def export_gateway(stack: Stack) -> Iterator[str]:
    """A gateway with the default deadlines: a file stream is not cut at the unary upstream deadline."""
    process = start_gateway(
        "gateway-export", {**tenantry_gateway_env(stack), "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "5"}, stack.log_dir
    )
    try:
        yield f"http://{process.address}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def export_gateway_pid(export_gateway: str, stack: Stack) -> int:
    port = export_gateway.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"GATEWAY_PORT={port}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError("the gateway's process is not found")


@pytest.fixture
def small(stack: Stack) -> Tenant:
    tenant = stack.create_tenant("export")
    fill(stack, tenant.id, 30, batch=10)
    return tenant


def lines_of(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_export_of_100000_events_streams_in_bounded_memory_and_verifies_offline(
    stack: Stack, export_gateway: str, export_gateway_pid: int, tmp_path: Path
) -> None:
    tenant = stack.create_tenant("large")
    key = public_key(stack, tenant)  # before the trail is long: verification walks all of it
    fill(stack, tenant.id, LARGE)
    started = time.monotonic()
    target = tmp_path / "export.ndjson"
    pids = {"audit": stack.processes["audit"].process.pid, "gateway": export_gateway_pid}  # type: ignore[union-attr]
    with peak_rss_growth(pids) as growth:
        reply = download(export_gateway, tenant.owner_token, target)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("application/x-ndjson")
    size, export_seconds = target.stat().st_size, time.monotonic() - started
    print(f"export: {size / 1e6:.1f} MB in {export_seconds:.1f} s; peak RSS growth KiB: {growth}")
    # The file is ~70 MB; neither process may hold more than a small part of it.
    assert size > 40_000_000
    assert growth["gateway"] < 40_000, growth
    assert growth["audit"] < 40_000, growth

    started = time.monotonic()
    checked = verify_export(target, "--public-key", key)
    print(f"verify-export: {time.monotonic() - started:.1f} s")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ok: {target}:" in checked.stdout
    with target.open() as file:
        assert sum(1 for _ in file) >= LARGE + 2

    # A client that goes away after the first chunk: the gateway cancels the export in the audit service.
    abandoned = f"abandoned-{uuid.uuid4().hex}"
    with requests.get(
        f"{export_gateway}/api/v1/audit/events:export",
        headers={"Authorization": f"Bearer {tenant.owner_token}", "X-Request-Id": abandoned},
        stream=True,
        timeout=60,
    ) as reply:
        assert next(reply.iter_content(65536))
    audit_log = stack.log_dir / "audit.log"

    def ended() -> list[float]:
        lines = [json.loads(line) for line in audit_log.read_text().splitlines() if abandoned in line]
        return [line["duration_ms"] for line in lines if line.get("message") == "rpc"]

    # It ends long before a whole export would have (the call is cancelled, not left to its deadline).
    assert eventually(ended, timeout=30)[0] < export_seconds * 1000 / 2

    # One changed field in one line in the middle: named, and nothing after it is trusted.
    tampered = tmp_path / "tampered.ndjson"
    middle = 50_001
    with target.open() as source, tampered.open("w") as out:
        for number, line in enumerate(source, start=1):
            if number == middle:
                document = json.loads(line)
                document["event"]["resource_id"] = "2"
                line = json.dumps(document) + "\n"
            out.write(line)
    refused = verify_export(tampered)
    assert refused.returncode == 1
    assert f"line {middle}:" in refused.stdout and "does not match its chain hash" in refused.stdout


def test_a_csv_export_is_a_csv_file_that_verifies(
    stack: Stack, export_gateway: str, small: Tenant, tmp_path: Path
) -> None:
    target = tmp_path / "export.csv"
    reply = download(export_gateway, small.owner_token, target, format="csv", start_time="2020-01-01T00:00:00Z")
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [row["line"] for row in (rows[0], rows[-1])] == ["start", "end"]
    events = rows[1:-1]
    assert len(events) >= 30 and all(row["line"] == "event" and row["chain_hash"] for row in events)
    assert json.loads(events[-1]["details"])["tags"] == ["a", "b"]
    # The key as the README takes it: base64, from the REST verification answer.
    verification = requests.get(
        f"{export_gateway}/api/v1/audit/verification", headers={"Authorization": f"Bearer {small.owner_token}"}
    ).json()
    checked = verify_export(target, "--public-key", verification["checkpoint_key"]["public_key"])
    assert checked.returncode == 0, checked.stdout + checked.stderr

    rows[5]["resource_type"] = "other"
    tampered = tmp_path / "tampered.csv"
    with tampered.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    refused = verify_export(tampered)
    assert refused.returncode == 1 and "line 7:" in refused.stdout, refused.stdout


def test_removed_reordered_or_cut_lines_are_found(stack: Stack, small: Tenant, tmp_path: Path) -> None:
    original = export_lines(stack, small.owner_token).decode().splitlines(keepends=True)
    cases = {
        "removed": original[:10] + original[11:],
        "reordered": [*original[:10], original[11], original[10], *original[12:]],
        "truncated": original[:-1],
        "head cut": [original[0], *original[4:]],
    }
    expected = {
        "removed": "line 11: event",
        "reordered": "line 11: event",
        "truncated": "truncated",
        "head cut": "line 2: event",
    }
    for name, lines in cases.items():
        path = tmp_path / f"{name}.ndjson"
        path.write_text("".join(lines))
        refused = verify_export(path)
        assert refused.returncode == 1 and expected[name] in refused.stdout, (name, refused.stdout)


def test_a_file_re_signed_with_another_key_fails_against_the_service_key(
    stack: Stack, small: Tenant, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = tmp_path / "export.ndjson"
    path.write_bytes(export_lines(stack, small.owner_token))
    lines = lines_of(path)
    stranger = Ed25519PrivateKey.generate()
    other = stranger.public_key().public_bytes_raw()
    lines[-1]["end"]["checkpoint_key"]["public_key"] = __import__("base64").b64encode(other).decode()
    forged = tmp_path / "forged.ndjson"
    forged.write_text("".join(json.dumps(line) + "\n" for line in lines))
    refused = verify_export(forged, "--public-key", public_key(stack, small))
    assert refused.returncode == 1 and "another key" in refused.stdout


def test_the_time_range_picks_the_chain_stretch_and_starts_from_a_signed_link(stack: Stack, tmp_path: Path) -> None:
    tenant = stack.create_tenant("range")
    before = [event(tenant.id) for _ in range(5)]
    append(stack, *before)
    cut = datetime.now(UTC) + timedelta(milliseconds=5)
    later = [event(tenant.id) for _ in range(5)]
    for item in later:
        item.created_at.FromDatetime(cut + timedelta(seconds=1))
    append(stack, *later)
    start = Timestamp()
    start.FromDatetime(cut)
    path = tmp_path / "range.ndjson"
    path.write_bytes(export_lines(stack, tenant.owner_token, start_time=start))
    lines = lines_of(path)
    exported = [line["event"]["id"] for line in lines if "event" in line]
    assert exported == [item.id for item in later]
    assert int(lines[0]["start"]["sequence"]) > 0
    assert verify_export(path).returncode == 0


def test_an_export_shows_only_the_callers_tenant(stack: Stack, small: Tenant) -> None:
    other = stack.create_tenant("other")
    fill(stack, other.id, 3, batch=3)
    text = export_lines(stack, small.owner_token).decode()
    assert other.id not in text and small.id in text


def test_bad_requests_are_refused_clearly(stack: Stack, export_gateway: str, small: Tenant) -> None:
    url = f"{export_gateway}/api/v1/audit/events:export"
    assert requests.get(url, timeout=10).status_code == 401
    reply = requests.get(url, params={"format": "xml"}, headers={"Authorization": f"Bearer {small.owner_token}"})
    assert reply.status_code == 400 and "format" in reply.text
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(datetime.now(UTC))
    end.FromDatetime(datetime.now(UTC) - timedelta(days=1))
    error = rpc_error(lambda: export_lines(stack, small.owner_token, start_time=start, end_time=end))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "end_time" in (error.details() or "")


def test_a_chain_altered_in_the_database_is_not_exported_or_signed(stack: Stack, small: Tenant) -> None:
    victim = event_at(stack, small.id, 12)
    as_superuser_behind_the_triggers(
        stack, "UPDATE audit.events SET resource_id = 'rewritten' WHERE id = %s", (victim,)
    )
    error = rpc_error(lambda: export_lines(stack, small.owner_token))
    assert error.code() == grpc.StatusCode.DATA_LOSS and "hash mismatch" in (error.details() or "")


def test_events_of_both_chain_formats_export_as_stored_and_verify_offline(
    stack: Stack, export_gateway: str, tenant: Tenant, tmp_path: Path
) -> None:
    key = public_key(stack, tenant)
    first_format = append_as_before_the_model_grew(stack, tenant.id)
    # Stored as they are: today's ingest would have lifted a category, an outcome and an actor from these.
    not_lifted = append_as_stored(
        stack,
        tenant.id,
        user_id=uuid.uuid4(),
        details={"category": "auth", "outcome": "failure", "reason": "bad_password"},
        recorded_by_type="service_account",
        recorded_by_id="sa-1",
    )
    lifted = event(tenant.id, "user.login_failed")
    lifted.user_id = str(uuid.uuid4())
    lifted.details.update({"category": "auth", "outcome": "failure", "reason": "bad_password"})
    append(stack, lifted)

    for format in ("ndjson", "csv"):
        target = tmp_path / f"export.{format}"
        reply = download(export_gateway, tenant.owner_token, target, format=format)
        assert reply.status_code == 200, reply.text
        checked = verify_export(target, "--public-key", key)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    exported = {line["event"]["id"]: line for line in lines_of(tmp_path / "export.ndjson") if "event" in line}
    assert exported[first_format]["chain_format"] == 1
    assert "category" not in exported[first_format]["event"]
    assert exported[not_lifted]["chain_format"] == 2
    assert {"category", "outcome", "actor_type"}.isdisjoint(exported[not_lifted]["event"])
    assert exported[not_lifted]["event"]["recorded_by_type"] == "AUDIT_ACTOR_TYPE_SERVICE_ACCOUNT"
    grown = exported[lifted.id]["event"]
    assert (grown["category"], grown["outcome"], grown["error_message"]) == (
        "AUDIT_CATEGORY_AUTH",
        "AUDIT_OUTCOME_FAILURE",
        "bad_password",
    )
    assert (grown["actor_type"], grown["actor_id"]) == ("AUDIT_ACTOR_TYPE_USER", lifted.user_id)
    # The CSV's columns are the event message's fields, the new ones included, and the chain format.
    header = next(csv.reader(io.StringIO((tmp_path / "export.csv").read_text())))
    assert {"category", "outcome", "actor_type", "target_name", "recorded_by_id", "chain_format"} <= set(header)

    # The format is covered by the hash: an event claimed to be of the other format no longer matches.
    for event_id, claimed in ((first_format, 2), (not_lifted, 1)):
        lines = (tmp_path / "export.ndjson").read_text().splitlines()
        number = next(index for index, line in enumerate(lines) if event_id in line)
        document = json.loads(lines[number])
        document["chain_format"] = claimed
        lines[number] = json.dumps(document)
        tampered = tmp_path / "tampered.ndjson"
        tampered.write_text("\n".join(lines) + "\n")
        refused = verify_export(tampered)
        assert refused.returncode == 1
        assert f"line {number + 1}:" in refused.stdout and "does not match its chain hash" in refused.stdout
