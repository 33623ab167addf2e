"""The grown event model: stored, filtered, hash-chained in format 2, older events still verifying in format 1,
and any change to a new field found by verification."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from tenantry.audit.v1 import audit_pb2, audit_service_pb2

from services.audit import chain, repository
from tests.audit.tampering import (
    append,
    append_as_before_the_model_grew,
    as_superuser_behind_the_triggers,
    event,
    verify,
)
from tests.stack import AUDIT_CHAIN_KEY, INTERNAL, Stack, Tenant, rpc_error


def rich_event(tenant_id: str, **fields: Any) -> audit_pb2.AuditEvent:
    message = event(tenant_id, fields.pop("action", "document.shared"))
    values: dict[str, Any] = {
        "category": audit_pb2.AUDIT_CATEGORY_DATA,
        "outcome": audit_pb2.AUDIT_OUTCOME_FAILURE,
        "error_message": "quota exceeded",
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
        "actor_type": audit_pb2.AUDIT_ACTOR_TYPE_API_KEY,
        "actor_id": "key-1",
        "target_type": "user",
        "target_id": f"u-{uuid.uuid4().hex[:8]}",
        "target_name": "Émile",
        "recorded_by_type": audit_pb2.AUDIT_ACTOR_TYPE_SERVICE_ACCOUNT,
        "recorded_by_id": "sa-1",
    }
    values.update(fields)
    for name, value in values.items():
        setattr(message, name, value)
    return message


NEW_FIELDS = chain.FORMAT_2_TEXT_FIELDS


def listed(stack: Stack, tenant: Tenant, **filters: Any) -> list[audit_pb2.AuditEvent]:
    return stack.audit_events(tenant.owner_token, **filters)


def test_the_new_fields_are_stored_and_read_back(stack: Stack, tenant: Tenant) -> None:
    sent = rich_event(tenant.id)
    assert append(stack, sent) == 1
    (found,) = listed(stack, tenant, session_id=sent.session_id)
    assert found.id == sent.id
    for name in NEW_FIELDS:
        assert getattr(found, name) == getattr(sent, name), name
    stored = stack.sql("SELECT category, outcome, actor_type, chain_format FROM audit.events WHERE id = %s", (sent.id,))
    assert stored == [("data", "failure", "api_key", chain.FORMAT_2)]


def test_tenantry_account_events_take_category_outcome_and_error_from_their_details(
    stack: Stack, tenant: Tenant
) -> None:
    """Auth writes {"category": "auth", "outcome": "failure", "reason": ...} in details; the fields follow."""
    failed = event(tenant.id, "auth.login.failed")
    failed.user_id = str(uuid.uuid4())
    failed.details.update({"category": "auth", "outcome": "failure", "reason": "bad_password"})
    odd = event(tenant.id, "auth.something")
    odd.details.update({"category": "not-a-category", "outcome": "maybe", "reason": "x"})
    append(stack, failed, odd)
    by_id = {e.id: e for e in listed(stack, tenant)}
    lifted = by_id[failed.id]
    assert (lifted.category, lifted.outcome, lifted.error_message) == (
        audit_pb2.AUDIT_CATEGORY_AUTH,
        audit_pb2.AUDIT_OUTCOME_FAILURE,
        "bad_password",
    )
    assert (lifted.actor_type, lifted.actor_id) == (audit_pb2.AUDIT_ACTOR_TYPE_USER, failed.user_id)
    assert lifted.details["reason"] == "bad_password"
    left = by_id[odd.id]
    assert (left.category, left.outcome, left.error_message, left.actor_type) == (0, 0, "", 0)
    assert verify(stack, tenant.owner_token).intact


def test_each_filter_finds_only_its_events(stack: Stack, tenant: Tenant) -> None:
    one = rich_event(tenant.id)
    other = rich_event(
        tenant.id,
        category=audit_pb2.AUDIT_CATEGORY_CONSENT,
        outcome=audit_pb2.AUDIT_OUTCOME_SUCCESS,
        error_message="",
        actor_type=audit_pb2.AUDIT_ACTOR_TYPE_SYSTEM,
        actor_id="nightly",
        target_type="document",
    )
    append(stack, one, other)

    def ids(**filters: Any) -> set[str]:
        return {e.id for e in listed(stack, tenant, **filters)} & {one.id, other.id}

    assert ids(category="data") == ids(category="AUDIT_CATEGORY_DATA") == {one.id}
    assert ids(category="consent") == {other.id}
    assert ids(outcome=audit_pb2.AUDIT_OUTCOME_FAILURE) == {one.id}
    assert ids(actor_type=audit_pb2.AUDIT_ACTOR_TYPE_SYSTEM) == {other.id}
    assert ids(actor_id="key-1") == {one.id}
    assert ids(session_id=other.session_id) == {other.id}
    assert ids(target_type="user", target_id=one.target_id) == {one.id}
    assert ids(target_type="user", target_id=other.target_id) == set()
    error = rpc_error(lambda: listed(stack, tenant, category="nope"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("category:")


def test_the_first_chain_format_hashes_as_it_always_did() -> None:
    """Format 1 must stay byte for byte what events appended before the model grew were hashed with."""
    first_model = {
        "id": uuid.UUID("8a3f1c2e-5b6d-4e7f-9a0b-1c2d3e4f5a6b"),
        "tenant_id": uuid.UUID("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"),
        "user_id": None,
        "action": "doc.edited",
        "resource_type": "doc",
        "resource_id": "1",
        "details": {"size": 1e20, "ratio": 0.5, "tags": ["a", "b"], "nested": {"z": 1, "a": "é"}},
        "ip_address": "10.0.0.1",
        "user_agent": None,
        "request_id": "r-1",
        "created_at": datetime(2026, 11, 22, 8, 30, 1, 123456, tzinfo=timezone(timedelta(hours=2))),
        "chain_format": chain.FORMAT_1,
    }
    # Computed by the chain code as it was before format 2 existed.
    expected = "3d01aa9b518c8d47e67a142a11113910f16af468df2adab302ef830c5e74ce5a"
    assert chain.link(AUDIT_CHAIN_KEY.encode(), b"\x01" * 32, first_model, 7).hex() == expected
    # The new fields are not part of format 1; in format 2 they are, and so is the format.
    grown = {**first_model, **dict.fromkeys(chain.FORMAT_2_TEXT_FIELDS), "chain_format": chain.FORMAT_2}
    assert chain.link(AUDIT_CHAIN_KEY.encode(), b"\x01" * 32, grown, 7).hex() != expected
    with pytest.raises(ValueError):
        chain.link(AUDIT_CHAIN_KEY.encode(), b"", {**grown, "chain_format": 3}, 7)


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        (
            datetime(2026, 11, 22, 8, 30, 1, 123456, tzinfo=timezone(timedelta(hours=2))),
            "8a3bb2ff8571f00353e48c605241bc018e0a94500893d50e206fcf1e3d518050",
        ),
        (
            datetime(2026, 11, 22, 8, 30, 1, tzinfo=UTC),
            "4df6c01d913b147eb924029103542669ddfe23cdb3433956e31c8cadce43a564",
        ),
        (
            datetime(2026, 11, 22, 8, 30, 1, 5, tzinfo=UTC),
            "9d6c61036a03f914b2865705e32b488f29a682e73eedd66f2c0478c3242644db",
        ),
    ],
)
def test_the_second_chain_format_hashes_as_it_did_when_introduced(created_at: datetime, expected: str) -> None:
    """Format 2 must stay byte for byte what events were hashed with, whatever makes it faster: times on
    a whole second and off it, in another zone, numbers past 64 bits in details, read back as stored."""
    details = {"size": 1e20, "ratio": 0.5, "tags": ["a", "b"], "nested": {"z": 1, "a": "é"}, "huge": 1e300}
    event = {
        "id": "8a3f1c2e-5b6d-4e7f-9a0b-1c2d3e4f5a6b",
        "tenant_id": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "user_id": None,
        "action": "doc.edited",
        "resource_type": "doc",
        "resource_id": "1",
        "details": details,
        "ip_address": "10.0.0.1",
        "user_agent": None,
        "request_id": "r-1",
        "created_at": created_at,
        "chain_format": chain.FORMAT_2,
        **dict.fromkeys(chain.FORMAT_2_TEXT_FIELDS),
        "category": "data",
        "actor_type": "user",
        "actor_id": "u-1",
    }
    # Computed by the chain code as it was when format 2 was introduced.
    assert chain.link(AUDIT_CHAIN_KEY.encode(), b"\x01" * 32, event, 7).hex() == expected
    # Details as jsonb gives them back (integers written out in full) hash the same once read.
    as_stored = json.dumps(chain.normalized(details))
    read_back = {**event, "details": repository.stored_details(as_stored)}
    assert chain.link(AUDIT_CHAIN_KEY.encode(), b"\x01" * 32, read_back, 7).hex() == expected


def test_events_of_the_first_format_still_verify_between_new_ones_and_keep_their_category(
    stack: Stack, tenant: Tenant
) -> None:
    old = append_as_before_the_model_grew(stack, tenant.id)
    append(stack, rich_event(tenant.id), rich_event(tenant.id, category=audit_pb2.AUDIT_CATEGORY_ADMIN))
    result = verify(stack, tenant.owner_token)
    assert result.intact, result.problem
    # Its category is in its details only, where the filter still finds it.
    assert old in {e.id for e in listed(stack, tenant, category="data")}
    assert old not in {e.id for e in listed(stack, tenant, category="admin")}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("category", "security"),
        ("outcome", "success"),
        ("error_message", "nothing happened"),
        ("session_id", "another-session"),
        ("actor_type", "user"),
        ("actor_id", "someone-else"),
        ("target_type", "group"),
        ("target_id", "u-0"),
        ("target_name", None),
        ("recorded_by_type", "user"),
        ("recorded_by_id", "sa-2"),
        ("chain_format", 1),
    ],
)
def test_a_change_to_a_new_field_is_found(stack: Stack, tenant: Tenant, column: str, value: object) -> None:
    target = rich_event(tenant.id)
    append(stack, target, rich_event(tenant.id))
    as_superuser_behind_the_triggers(stack, f"UPDATE audit.events SET {column} = %s WHERE id = %s", (value, target.id))
    result = verify(stack, tenant.owner_token)
    assert not result.intact
    assert (result.first_broken_event_id, result.problem) == (target.id, "hash mismatch")


def test_a_new_field_is_refused_past_its_limit_naming_the_event(stack: Stack, tenant: Tenant) -> None:
    fine = rich_event(tenant.id)
    long = rich_event(tenant.id, session_id="s" * 129)
    request = audit_service_pb2.AppendAuditEventsRequest(events=[fine, long])
    error = rpc_error(lambda: stack.audit_ingest.AppendAuditEvents(request, metadata=INTERNAL, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "events[1].session_id: must be at most 128 characters"
    assert stack.sql("SELECT count(*) FROM audit.events WHERE id = %s", (fine.id,)) == [(0,)]


def test_an_error_message_needs_a_failure(stack: Stack, tenant: Tenant) -> None:
    request = audit_service_pb2.AppendAuditEventsRequest(
        events=[rich_event(tenant.id, outcome=audit_pb2.AUDIT_OUTCOME_SUCCESS)]
    )
    error = rpc_error(lambda: stack.audit_ingest.AppendAuditEvents(request, metadata=INTERNAL, timeout=10))
    assert error.details().startswith("events[0].error_message:")
