"""The keyed hash chain: intact as written, and broken by any change made behind Tenantry's back."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest
from tenantry.audit.v1 import audit_pb2, audit_service_pb2

from tests.stack import INTERNAL, Stack, Tenant, bearer


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
    return stack.audit_ingest.AppendAuditEvents(request, metadata=INTERNAL).appended


def verify(stack: Stack, token: str) -> audit_service_pb2.VerifyAuditTrailResponse:
    return stack.audit.VerifyAuditTrail(audit_service_pb2.VerifyAuditTrailRequest(), metadata=bearer(token))


def as_superuser_behind_the_triggers(stack: Stack, statement: str, params: tuple[object, ...] = ()) -> None:
    with psycopg.connect(stack.database_url) as connection:
        connection.execute("SET LOCAL session_replication_role = replica")
        connection.execute(statement, params)


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    created = stack.create_tenant("chain")
    append(stack, *(event(created.id) for _ in range(5)))
    return created


def test_a_written_chain_verifies(stack: Stack, tenant: Tenant) -> None:
    result = verify(stack, tenant.owner_token)
    assert result.intact and result.events_checked >= 5 and result.problem == ""
    sequences = [e.sequence for e in stack.audit_events(tenant.owner_token, action="doc.edited")]
    assert sorted(sequences) == list(range(min(sequences), min(sequences) + 5))


def test_a_retried_batch_leaves_the_chain_as_it_was(stack: Stack, tenant: Tenant) -> None:
    batch = [event(tenant.id), event(tenant.id)]
    assert append(stack, *batch) == 2
    before = verify(stack, tenant.owner_token).events_checked
    assert append(stack, *batch) == 0
    after = verify(stack, tenant.owner_token)
    assert after.intact and after.events_checked == before


def test_concurrent_appends_keep_one_unbroken_chain(stack: Stack, tenant: Tenant) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: append(stack, event(tenant.id), event("")), range(24)))
    result = verify(stack, tenant.owner_token)
    assert result.intact and result.events_checked >= 5 + 24
    platform = verify(stack, stack.operator_token())
    assert platform.intact


def _one_event(stack: Stack, tenant: Tenant, position: int) -> str:
    return str(
        stack.sql(
            "SELECT id FROM audit.events WHERE tenant_id = %s ORDER BY sequence OFFSET %s LIMIT 1",
            (tenant.id, position),
        )[0][0]
    )


def test_an_edited_event_is_found(stack: Stack, tenant: Tenant) -> None:
    target = _one_event(stack, tenant, 2)
    as_superuser_behind_the_triggers(
        stack, "UPDATE audit.events SET details = details || '{\"size\": 1}' WHERE id = %s", (target,)
    )
    result = verify(stack, tenant.owner_token)
    assert not result.intact
    assert (result.first_broken_event_id, result.problem) == (target, "hash mismatch")


def test_a_removed_event_is_found(stack: Stack, tenant: Tenant) -> None:
    target = _one_event(stack, tenant, 1)
    following = _one_event(stack, tenant, 2)
    as_superuser_behind_the_triggers(stack, "DELETE FROM audit.events WHERE id = %s", (target,))
    result = verify(stack, tenant.owner_token)
    assert not result.intact and result.first_broken_event_id == following
    assert result.problem.startswith("sequence gap")


def test_a_removed_last_event_is_found(stack: Stack, tenant: Tenant) -> None:
    last = str(
        stack.sql("SELECT id FROM audit.events WHERE tenant_id = %s ORDER BY sequence DESC LIMIT 1", (tenant.id,))[0][0]
    )
    as_superuser_behind_the_triggers(stack, "DELETE FROM audit.events WHERE id = %s", (last,))
    result = verify(stack, tenant.owner_token)
    assert not result.intact and "the chain ends" in result.problem


def test_a_forged_event_is_found(stack: Stack, tenant: Tenant) -> None:
    first = _one_event(stack, tenant, 0)
    as_superuser_behind_the_triggers(
        stack,
        "UPDATE audit.events SET action = 'doc.viewed', chain_hash = sha256('\\x00'::bytea) WHERE id = %s",
        (first,),
    )
    result = verify(stack, tenant.owner_token)
    assert not result.intact and result.first_broken_event_id == first


def test_another_tenants_chain_is_not_disturbed(stack: Stack, tenant: Tenant) -> None:
    other = stack.create_tenant("chain")
    append(stack, event(other.id))
    as_superuser_behind_the_triggers(
        stack, "UPDATE audit.events SET resource_id = 'x' WHERE id = %s", (_one_event(stack, tenant, 0),)
    )
    assert not verify(stack, tenant.owner_token).intact
    assert verify(stack, other.owner_token).intact
