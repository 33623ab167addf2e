"""The keyed hash chain: intact as written, and broken by any change made behind Tenantry's back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.audit.tampering import append, as_superuser_behind_the_triggers, event, event_at, verify
from tests.stack import Stack, Tenant


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


def test_verification_while_events_arrive_finds_an_intact_chain(stack: Stack, tenant: Tenant) -> None:
    # Verification once read the events and then, separately, the head that
    # an append had moved meanwhile: "the chain ends at 37 but its head is 38".
    appending = threading.Event()
    appending.set()

    def keep_appending() -> None:
        while appending.is_set():
            append(stack, event(tenant.id))

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        results = [verify(stack, tenant.owner_token) for _ in range(30)]
    finally:
        appending.clear()
        writer.join()
    assert [result.problem for result in results if not result.intact] == []
    checked = [result.events_checked for result in results]
    assert checked == sorted(checked) and checked[-1] > checked[0]


def test_an_edited_event_is_found(stack: Stack, tenant: Tenant) -> None:
    target = event_at(stack, tenant.id, 2)
    as_superuser_behind_the_triggers(
        stack, "UPDATE audit.events SET details = details || '{\"size\": 1}' WHERE id = %s", (target,)
    )
    result = verify(stack, tenant.owner_token)
    assert not result.intact
    assert (result.first_broken_event_id, result.problem) == (target, "hash mismatch")


def test_a_removed_event_is_found(stack: Stack, tenant: Tenant) -> None:
    target = event_at(stack, tenant.id, 1)
    following = event_at(stack, tenant.id, 2)
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
    assert not result.intact and "the chain ends" in result.problem and "its head is" in result.problem


def test_a_rewritten_chain_head_is_found(stack: Stack, tenant: Tenant) -> None:
    as_superuser_behind_the_triggers(
        stack, "UPDATE audit.chain_heads SET chain_hash = sha256('forged'::bytea) WHERE scope = %s", (tenant.id,)
    )
    result = verify(stack, tenant.owner_token)
    assert not result.intact and result.problem.startswith("the chain head's hash is not that of event")


def test_a_forged_event_is_found(stack: Stack, tenant: Tenant) -> None:
    first = event_at(stack, tenant.id, 0)
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
        stack, "UPDATE audit.events SET resource_id = 'x' WHERE id = %s", (event_at(stack, tenant.id, 0),)
    )
    assert not verify(stack, tenant.owner_token).intact
    assert verify(stack, other.owner_token).intact
