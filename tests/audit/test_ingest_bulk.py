"""Bulk ingest: partly new batches, a duplicate check that stays on the primary key, analyzed partitions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tests.audit.tampering import append, event, stored_ids_under_a_generic_plan, verify
from tests.stack import Stack, Tenant


def test_a_batch_partly_stored_already_appends_only_the_new_events_and_keeps_the_chain(
    stack: Stack, tenant: Tenant
) -> None:
    first = [event(tenant.id) for _ in range(3)]
    assert append(stack, *first) == 3
    later = [event(tenant.id) for _ in range(4)]
    assert append(stack, first[1], *later, first[0]) == 4
    result = verify(stack, tenant.owner_token)
    assert result.intact, result.problem


def test_the_duplicate_check_probes_the_primary_key_even_with_a_generic_plan(stack: Stack, tenant: Tenant) -> None:
    """Counted in the transaction's own table statistics: no sequential scan of the month's partition."""
    stored = [event(tenant.id) for _ in range(50)]
    append(stack, *stored)
    ids = [uuid.UUID(item.id) for item in stored] + [uuid.uuid4()]
    created = [item.created_at.ToDatetime(tzinfo=UTC) for item in stored] + [datetime.now(UTC)]
    found, seq_scans, index_scans = stored_ids_under_a_generic_plan(
        stack, "SELECT stored_ids FROM audit.open_chain_for_append(%s, %s, %s)", (tenant.id, ids, created)
    )
    assert found == set(ids[:-1])
    assert seq_scans == 0 and index_scans > 0


def test_a_partition_made_for_a_late_event_is_analyzed_at_once(stack: Stack) -> None:
    late = event("")
    late.created_at.FromDatetime(datetime(2033, 3, 15, tzinfo=UTC))
    assert append(stack, late) == 1
    # -1 means never analyzed; ANALYZE of an empty or small table sets the real count.
    rows = stack.sql("SELECT reltuples FROM pg_class WHERE relname = 'events_2033_03'")
    assert rows and rows[0][0] >= 0


def test_a_batch_over_tenants_counts_every_event_when_one_tenant_needs_a_new_partition(
    stack: Stack, tenant: Tenant
) -> None:
    """Each tenant's events go in a transaction of their own; a tenant whose events need a month
    without a partition is tried again alone, and the reply still counts the whole batch."""
    now = [event(tenant.id) for _ in range(2)]
    late = event("")
    late.created_at.FromDatetime(datetime(2034, 7, 9, tzinfo=UTC))
    assert append(stack, now[0], late, now[1]) == 3
    # Sent again (a relay that lost the acknowledgement): nothing twice.
    assert append(stack, now[0], late, now[1]) == 0
    stored = stack.sql(
        "SELECT count(*) FROM audit.events WHERE id = ANY(%s)", ([uuid.UUID(item.id) for item in (*now, late)],)
    )
    assert stored[0][0] == 3
    result = verify(stack, tenant.owner_token)
    assert result.intact, result.problem
