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
