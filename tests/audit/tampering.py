"""What the chain and checkpoint tests share: chained events, verification, and a superuser behind the triggers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from tenantry.audit.v1 import audit_pb2, audit_service_pb2

from services.audit import chain
from tests.stack import AUDIT_CHAIN_KEY, INTERNAL, Stack, bearer


def event(tenant_id: str, action: str = "doc.edited") -> audit_pb2.AuditEvent:
    message = audit_pb2.AuditEvent(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        action=action,
        resource_type="doc",
        resource_id="1",
        ip_address="10.0.0.1",
    )
    message.details.update({"size": 1e20, "ratio": 0.5, "tags": ["a", "b"], "nested": {"z": 1, "a": "é"}})
    message.created_at.FromDatetime(datetime.now(UTC))
    return message


def append(stack: Stack, *events: audit_pb2.AuditEvent) -> int:
    request = audit_service_pb2.AppendAuditEventsRequest(events=events)
    return stack.audit_ingest.AppendAuditEvents(request, metadata=INTERNAL, timeout=10).appended


def verify(stack: Stack, token: str) -> audit_service_pb2.VerifyAuditTrailResponse:
    return stack.audit.VerifyAuditTrail(audit_service_pb2.VerifyAuditTrailRequest(), metadata=bearer(token), timeout=10)


def outbox_drained(stack: Stack, tenant_id: str) -> bool:
    """Every event the tenant's creation and login left in the services' outboxes has reached the trail."""
    waiting = stack.sql(
        "SELECT (SELECT count(*) FROM tenants.outbox WHERE tenant_id = %s)"
        " + (SELECT count(*) FROM auth.outbox WHERE tenant_id = %s)",
        (tenant_id, tenant_id),
    )
    return bool(waiting[0][0] == 0)


def as_superuser_behind_the_triggers(stack: Stack, statement: str, params: tuple[object, ...] = ()) -> None:
    with psycopg.connect(stack.database_url) as connection:
        connection.execute("SET LOCAL session_replication_role = replica")
        connection.execute(statement, params)


def append_as_stored(stack: Stack, tenant_id: str, **fields: Any) -> str:
    """An event stored with exactly these values (chain.EVENT_FIELDS; the others empty), chained
    after the head in its chain_format (2 unless given): as an earlier ingest stored it, or with
    values today's ingest would have derived otherwise. Its id."""
    sequence, previous = stack.sql("SELECT sequence, chain_hash FROM audit.chain_heads WHERE scope = %s", (tenant_id,))[
        0
    ]
    stored: dict[str, Any] = {
        **dict.fromkeys(chain.EVENT_FIELDS),
        "id": uuid.uuid4(),
        "tenant_id": uuid.UUID(tenant_id),
        "action": "doc.archived",
        "resource_type": "doc",
        "resource_id": "9",
        "details": {},
        "created_at": datetime.now(UTC),
        "chain_format": chain.FORMAT_2,
        **fields,
    }
    link = chain.link(AUDIT_CHAIN_KEY.encode(), bytes(previous), stored, sequence + 1)
    columns = [*chain.EVENT_FIELDS, "sequence", "chain_hash"]
    values = {**stored, "details": Jsonb(stored["details"]), "sequence": sequence + 1, "chain_hash": link}
    as_superuser_behind_the_triggers(
        stack,
        f"INSERT INTO audit.events ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
        tuple(values[column] for column in columns),
    )
    as_superuser_behind_the_triggers(
        stack,
        "UPDATE audit.chain_heads SET sequence = %s, chain_hash = %s WHERE scope = %s",
        (sequence + 1, link, tenant_id),
    )
    return str(stored["id"])


def append_as_before_the_model_grew(stack: Stack, tenant_id: str, created_at: datetime | None = None) -> str:
    """An event as the first model's ingest stored it: format 1, no new fields, chained after the head;
    its details say a category, an outcome and a reason, which that ingest did not lift."""
    return append_as_stored(
        stack,
        tenant_id,
        user_id=uuid.uuid4(),
        details={"category": "data", "outcome": "failure", "reason": "gone", "size": 2.0},
        ip_address="2001:db8::1",
        request_id="req-1",
        created_at=(created_at or datetime.now(UTC)).replace(microsecond=0),
        chain_format=chain.FORMAT_1,
    )


def event_at(stack: Stack, tenant_id: str, position: int) -> str:
    """The id of the tenant's event at a position of its chain, from 0."""
    rows = stack.sql(
        "SELECT id FROM audit.events WHERE tenant_id = %s ORDER BY sequence OFFSET %s LIMIT 1", (tenant_id, position)
    )
    return str(rows[0][0])


def chain_length(stack: Stack, tenant_id: str) -> int:
    return int(stack.sql("SELECT sequence FROM audit.chain_heads WHERE scope = %s", (tenant_id,))[0][0])


def cut_the_newest_events(stack: Stack, tenant_id: str, count: int) -> int:
    """Deletes the tenant's newest events and rewinds its chain head to the event before them, as a
    superuser covering their tracks would; the chain left behind is consistent. Returns its length."""
    length = chain_length(stack, tenant_id) - count
    with psycopg.connect(stack.database_url) as connection:
        connection.execute("SET LOCAL session_replication_role = replica")
        connection.execute("DELETE FROM audit.events WHERE tenant_id = %s AND sequence > %s", (tenant_id, length))
        connection.execute(
            "UPDATE audit.chain_heads SET sequence = %s,"
            " chain_hash = (SELECT chain_hash FROM audit.events WHERE tenant_id = %s AND sequence = %s)"
            " WHERE scope = %s",
            (length, tenant_id, length, tenant_id),
        )
    return length


def checkpoint_log(stack: Stack, scope: str) -> Path:
    return Path(stack.audit_data_dir) / "checkpoints" / f"{scope}.jsonl"


def checkpoint_lines(stack: Stack, scope: str) -> list[dict[str, Any]]:
    path = checkpoint_log(stack, scope)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stored_ids_under_a_generic_plan(
    stack: Stack, statement: str, params: tuple[object, ...]
) -> tuple[set[Any], int, int]:
    """Runs an ingest lookup (its result's stored_ids) three times as the runtime role with generic plans
    (plpgsql plans its statements once per session: every call after the first runs the generic plan);
    the ids found, and the sequential and index scans of this month's partition, counted in the
    transaction's own table statistics."""
    partition = f"events_{datetime.now(UTC):%Y_%m}"
    with psycopg.connect(stack.database_url) as connection:
        connection.execute('SET ROLE "tenantry_audit"')
        connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        found: set[Any] = set()
        for _ in range(3):
            row = connection.execute(statement, params).fetchone()
            assert row is not None
            found = set(row[0])
        scans = connection.execute(
            "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE schemaname = 'audit' AND relname = %s",
            (partition,),
        ).fetchone()
        connection.rollback()
    assert scans is not None
    return found, int(scans[0]), int(scans[1])
