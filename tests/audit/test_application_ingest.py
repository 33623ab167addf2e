"""A tenant's application appends its own events (BatchCreateAuditEvents), over gRPC and REST:
idempotent by id, the tenant and the recorder from the credential, Tenantry's namespaces refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import pytest
import requests
from tenantry.audit.v1 import audit_pb2, audit_service_pb2
from tenantry.auth.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc, roles_service_pb2

from tests.audit.tampering import stored_ids_under_a_generic_plan, verify
from tests.gateway.conftest import gateway_in_front
from tests.stack import Stack, Tenant, bearer, rpc_error


def app_event(**fields: Any) -> audit_service_pb2.ApplicationAuditEvent:
    created_at = fields.pop("created_at", datetime.now(UTC))
    values = {"id": str(uuid.uuid4()), "action": "document.shared", "resource_type": "document", "resource_id": "d-1"}
    message = audit_service_pb2.ApplicationAuditEvent(**{**values, **fields})
    message.created_at.FromDatetime(created_at)
    return message


def send(stack: Stack, token: str, *events: audit_service_pb2.ApplicationAuditEvent) -> list[tuple[str, int]]:
    reply = stack.audit.BatchCreateAuditEvents(
        audit_service_pb2.BatchCreateAuditEventsRequest(events=events), metadata=bearer(token), timeout=30
    )
    return [(receipt.id, receipt.sequence) for receipt in reply.receipts]


def refused(stack: Stack, token: str, *events: audit_service_pb2.ApplicationAuditEvent) -> grpc.RpcError:
    return refused_with(stack, bearer(token), *events)


def stored_count(stack: Stack, *ids: str) -> int:
    return int(stack.sql("SELECT count(*) FROM audit.events WHERE id = ANY(%s::uuid[])", (list(ids),))[0][0])


def subject(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    return stack.create_tenant("apps")


def test_an_application_appends_events_that_are_chained_in_its_tenant(stack: Stack, tenant: Tenant) -> None:
    named = app_event(
        actor_id="end-user-7",
        category=audit_pb2.AUDIT_CATEGORY_DATA,
        outcome=audit_pb2.AUDIT_OUTCOME_FAILURE,
        error_message="document is locked",
        session_id="app-session-1",
        target_type="user",
        target_id="u-42",
        target_name="Ada",
        ip_address="2001:db8::1",
        user_agent="DocsApp/2.1",
    )
    named.details.update({"pages": 3})
    itself = app_event(action="report.generated", actor_type=audit_pb2.AUDIT_ACTOR_TYPE_SYSTEM, actor_id="nightly")
    plain = app_event()
    # Numbers and text whose JSON could change on the way through jsonb, and an integer past 64 bits.
    plain.details.update({"ratio": 1.5e-7, "huge": 1e20, "name": "Zoë 😀", "nested": {"b": [1.0, -0.25], "a": None}})
    receipts = send(stack, tenant.owner_token, named, itself, plain)
    assert [event_id for event_id, _ in receipts] == [named.id, itself.id, plain.id]
    sequences = [sequence for _, sequence in receipts]
    assert sequences == list(range(sequences[0], sequences[0] + 3))

    by_id = {e.id: e for e in stack.audit_events(tenant.owner_token)}
    owner = subject(tenant.owner_token)
    for sent in (named, itself, plain):
        stored = by_id[sent.id]
        assert (stored.tenant_id, stored.user_id) == (tenant.id, "")
        assert (stored.recorded_by_type, stored.recorded_by_id) == (audit_pb2.AUDIT_ACTOR_TYPE_USER, owner)
    assert (by_id[named.id].actor_type, by_id[named.id].actor_id) == (audit_pb2.AUDIT_ACTOR_TYPE_USER, "end-user-7")
    assert (by_id[itself.id].actor_type, by_id[itself.id].actor_id) == (audit_pb2.AUDIT_ACTOR_TYPE_SYSTEM, "nightly")
    # No end user named: the credential acted itself.
    assert (by_id[plain.id].actor_type, by_id[plain.id].actor_id) == (audit_pb2.AUDIT_ACTOR_TYPE_USER, owner)
    assert by_id[named.id].error_message == "document is locked" and by_id[named.id].details["pages"] == 3
    assert by_id[named.id].sequence == receipts[0][1]
    assert verify(stack, tenant.owner_token).intact


def test_a_replayed_batch_gets_the_same_receipts_and_stores_nothing_twice(stack: Stack, tenant: Tenant) -> None:
    batch = [app_event(), app_event(session_id="s-1")]
    first = send(stack, tenant.owner_token, *batch)
    assert send(stack, tenant.owner_token, *batch) == first
    # A batch partly sent before: the old events keep their receipts, the new one is appended after them.
    later = app_event()
    again = send(stack, tenant.owner_token, batch[1], later, batch[0])
    assert again[0] == first[1] and again[2] == first[0]
    assert again[1][1] > max(sequence for _, sequence in first)
    assert stored_count(stack, batch[0].id, batch[1].id, later.id) == 3
    assert verify(stack, tenant.owner_token).intact


def test_a_replay_by_another_credential_of_the_tenant_is_still_a_replay(stack: Stack, tenant: Tenant) -> None:
    """A retry after a key rotation: who resends is not part of the content."""
    sent = app_event()
    first = send(stack, tenant.owner_token, sent)
    admin = stack.add_member(tenant, f"admin-{uuid.uuid4().hex[:8]}@example.test", "admin").access_token
    assert send(stack, admin, sent) == first


def test_an_id_reused_with_other_content_is_refused_and_nothing_of_the_batch_is_stored(
    stack: Stack, tenant: Tenant
) -> None:
    original = app_event()
    send(stack, tenant.owner_token, original)
    changed_action = audit_service_pb2.ApplicationAuditEvent()
    changed_action.CopyFrom(original)
    changed_action.action = "document.deleted"
    moved_in_time = audit_service_pb2.ApplicationAuditEvent()
    moved_in_time.CopyFrom(original)
    moved_in_time.created_at.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    for reused in (changed_action, moved_in_time):
        bystander = app_event()
        error = refused(stack, tenant.owner_token, bystander, reused)
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error.details().startswith("events[1].id: an event with this id is stored already")
        assert stored_count(stack, bystander.id) == 0
    assert stored_count(stack, original.id) == 1


def test_a_batch_naming_an_id_twice_is_refused(stack: Stack, tenant: Tenant) -> None:
    twice = app_event()
    error = refused(stack, tenant.owner_token, twice, app_event(), twice)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "events[2].id: repeats the id of events[0]"


@pytest.mark.parametrize(
    "action",
    [
        "auth.login.succeeded",
        "Auth.Login.Succeeded",
        "tenant.updated",
        "tenantry.anything",
        "membership.created",
        "invitation.accepted",
        "role.deleted",
        "user.created",
        "auth",
        "\u0430uth.login.succeeded",  # a Cyrillic a
        "auth .login",
    ],
)
def test_tenantry_namespaces_are_refused_naming_the_event(stack: Stack, tenant: Tenant, action: str) -> None:
    fine = app_event()
    error = refused(stack, tenant.owner_token, fine, app_event(action=action))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("events[1].action: ")
    assert stored_count(stack, fine.id) == 0


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"actor_type": audit_pb2.AUDIT_ACTOR_TYPE_API_KEY, "actor_id": "key-1"}, "events[0].actor_type: "),
        ({"actor_type": audit_pb2.AUDIT_ACTOR_TYPE_SERVICE_ACCOUNT}, "events[0].actor_type: "),
        ({"actor_type": audit_pb2.AUDIT_ACTOR_TYPE_USER}, "events[0].actor_id: "),
        ({"created_at": datetime.now(UTC) - timedelta(days=32)}, "events[0].created_at: "),
        ({"created_at": datetime.now(UTC) + timedelta(minutes=10)}, "events[0].created_at: "),
        ({"id": "not-a-uuid"}, "events[0].id: must be a UUID"),
        ({"ip_address": "300.1.1.1"}, "events[0].ip_address: "),
        ({"error_message": "failed"}, "events[0].error_message: "),
        ({"session_id": "s" * 129}, "events[0].session_id: "),
        ({"category": 99}, "events[0].category: "),
    ],
)
def test_a_malformed_event_is_refused_naming_its_field(
    stack: Stack, tenant: Tenant, fields: dict[str, Any], problem: str
) -> None:
    error = refused(stack, tenant.owner_token, app_event(**fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(problem), error.details()


def test_an_event_without_a_time_is_refused(stack: Stack, tenant: Tenant) -> None:
    timeless = app_event()
    timeless.ClearField("created_at")
    error = refused(stack, tenant.owner_token, timeless)
    assert error.details() == "events[0].created_at: is required"


def test_details_past_their_bound_are_refused(stack: Stack, tenant: Tenant) -> None:
    bulky = app_event()
    bulky.details.update({"text": "x" * 17_000})
    assert refused(stack, tenant.owner_token, bulky).details().startswith("events[0].details: ")


def test_a_batch_over_a_thousand_events_is_refused(stack: Stack, tenant: Tenant) -> None:
    error = refused(stack, tenant.owner_token, *(app_event() for _ in range(1001)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details() == "events: at most 1000 per batch"


def test_a_thousand_events_are_appended_at_once(stack: Stack, tenant: Tenant) -> None:
    receipts = send(stack, tenant.owner_token, *(app_event() for _ in range(1000)))
    assert len({sequence for _, sequence in receipts}) == 1000
    assert verify(stack, tenant.owner_token).intact


def test_without_audit_write_the_call_is_refused(stack: Stack, tenant: Tenant) -> None:
    viewer = stack.add_member(tenant, f"viewer-{uuid.uuid4().hex[:8]}@example.test", "viewer").access_token
    error = refused(stack, viewer, app_event())
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "audit.write" in error.details()
    # A role holding audit.write alone may append, and still not read the trail.
    stack.roles.CreateRole(
        roles_service_pb2.CreateRoleRequest(name="app_writer", description="writes", permissions=["audit.write"]),
        metadata=bearer(tenant.owner_token),
    )
    writer = stack.add_member(tenant, f"writer-{uuid.uuid4().hex[:8]}@example.test", "app_writer").access_token
    assert len(send(stack, writer, app_event())) == 1
    denied = rpc_error(lambda: stack.audit_events(writer))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


def test_no_token_and_the_operators_token_are_refused(stack: Stack) -> None:
    request = audit_service_pb2.BatchCreateAuditEventsRequest(events=[app_event()])
    anonymous = rpc_error(lambda: stack.audit.BatchCreateAuditEvents(request, timeout=10))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    operator = rpc_error(
        lambda: stack.audit.BatchCreateAuditEvents(request, metadata=bearer(stack.operator_token()), timeout=10)
    )
    assert operator.code() == grpc.StatusCode.PERMISSION_DENIED


def test_events_land_in_the_credentials_tenant_and_no_other_tenant_reads_them(stack: Stack, tenant: Tenant) -> None:
    other = stack.create_tenant("apps-other")
    mine = app_event(session_id=f"s-{uuid.uuid4().hex}")
    send(stack, tenant.owner_token, mine)
    assert stack.sql("SELECT tenant_id::text FROM audit.events WHERE id = %s", (mine.id,)) == [(tenant.id,)]
    assert [e.id for e in stack.audit_events(tenant.owner_token, session_id=mine.session_id)] == [mine.id]
    assert stack.audit_events(other.owner_token, session_id=mine.session_id) == []
    # The other tenant resending the very event (same id and time: the primary key) is refused
    # without a word of whose it is, and its trail stays as it was.
    error = refused(stack, other.owner_token, mine)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and tenant.id not in error.details()
    assert stack.audit_events(other.owner_token, session_id=mine.session_id) == []
    assert verify(stack, tenant.owner_token).intact and verify(stack, other.owner_token).intact


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[str]:
    with gateway_in_front(stack, "gateway-app-audit") as url:
        yield url


def rest_event(**fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "action": "invoice.paid",
        "resource_type": "invoice",
        "resource_id": "inv-1",
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **fields,
    }


def post_batch(gateway: str, token: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{gateway}/api/v1/audit/events:batch", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_over_rest_a_batch_is_appended_replayed_and_filtered(gateway: str, stack: Stack, tenant: Tenant) -> None:
    session = f"web-{uuid.uuid4().hex[:8]}"
    events = [
        rest_event(category="AUDIT_CATEGORY_DATA", outcome="AUDIT_OUTCOME_SUCCESS", session_id=session),
        rest_event(target_type="customer", target_id="c-9", session_id=session, details={"amount": 12.5}),
    ]
    first = post_batch(gateway, tenant.owner_token, {"events": events})
    assert first.status_code == 200, first.text
    assert [receipt["id"] for receipt in first.json()["receipts"]] == [event["id"] for event in events]
    replay = post_batch(gateway, tenant.owner_token, {"events": events})
    assert replay.status_code == 200 and replay.json() == first.json()

    listed = requests.get(
        f"{gateway}/api/v1/audit/events",
        params={"session_id": session, "category": "data"},
        headers={"Authorization": f"Bearer {tenant.owner_token}"},
        timeout=30,
    )
    assert listed.status_code == 200, listed.text
    (found,) = listed.json()["events"]
    assert found["id"] == events[0]["id"]
    assert (found["category"], found["outcome"], found["recorded_by_type"]) == (
        "AUDIT_CATEGORY_DATA",
        "AUDIT_OUTCOME_SUCCESS",
        "AUDIT_ACTOR_TYPE_USER",
    )


def test_over_rest_a_body_cannot_name_a_tenant(gateway: str, stack: Stack, tenant: Tenant) -> None:
    other = stack.create_tenant("apps-victim")
    for body in (
        {"tenant_id": other.id, "events": [rest_event()]},
        {"events": [rest_event(tenant_id=other.id)]},
    ):
        reply = post_batch(gateway, tenant.owner_token, body)
        assert reply.status_code == 400, reply.text
        assert "tenant_id" in reply.text
    assert stack.sql("SELECT count(*) FROM audit.events WHERE tenant_id = %s AND action = 'invoice.paid'", (other.id,))[
        0
    ] == (0,)


def test_over_rest_refusals_name_the_event_and_field(gateway: str, stack: Stack, tenant: Tenant) -> None:
    namespaced = post_batch(
        gateway, tenant.owner_token, {"events": [rest_event(), rest_event(action="auth.login.succeeded")]}
    )
    assert namespaced.status_code == 400 and "events[1].action" in namespaced.text
    anonymous = requests.post(f"{gateway}/api/v1/audit/events:batch", json={"events": [rest_event()]}, timeout=30)
    assert anonymous.status_code == 401


def test_the_replay_lookup_probes_the_primary_key_even_with_a_generic_plan(stack: Stack, tenant: Tenant) -> None:
    """Looked up by id alone, the ids still go through the primary key's index: no scan of the month."""
    stored = [app_event() for _ in range(50)]
    send(stack, tenant.owner_token, *stored)
    ids = [uuid.UUID(item.id) for item in stored] + [uuid.uuid4()]
    since = datetime.now(UTC) - timedelta(days=32)
    found, seq_scans, index_scans = stored_ids_under_a_generic_plan(
        stack, "SELECT stored_ids FROM audit.open_chain_for_application(%s, %s, %s)", (tenant.id, ids, since)
    )
    assert found == set(ids[:-1])
    assert seq_scans == 0 and index_scans > 0


def test_an_api_key_with_audit_write_appends_and_is_recorded_as_the_recorder(
    gateway: str, stack: Stack, tenant: Tenant
) -> None:
    keys = api_keys_service_pb2_grpc.ApiKeyServiceStub(stack.channels["auth"])

    def key_with(*permissions: str) -> api_keys_service_pb2.CreateApiKeyResponse:
        request = api_keys_service_pb2.CreateApiKeyRequest(name="app", permissions=list(permissions))
        return keys.CreateApiKey(request, metadata=bearer(tenant.owner_token), timeout=10)

    writer = key_with("audit.write")
    over_grpc, for_someone = app_event(), app_event(actor_id="end-user-1")
    reply = stack.audit.BatchCreateAuditEvents(
        audit_service_pb2.BatchCreateAuditEventsRequest(events=[over_grpc, for_someone]),
        metadata=(("x-api-key", writer.secret),),
        timeout=30,
    )
    assert len(reply.receipts) == 2
    over_rest = rest_event()
    posted = requests.post(
        f"{gateway}/api/v1/audit/events:batch",
        json={"events": [over_rest]},
        headers={"X-Api-Key": writer.secret},
        timeout=30,
    )
    assert posted.status_code == 200, posted.text
    by_id = {e.id: e for e in stack.audit_events(tenant.owner_token)}
    key = (audit_pb2.AUDIT_ACTOR_TYPE_API_KEY, writer.api_key.id)
    for event_id in (over_grpc.id, for_someone.id, over_rest["id"]):
        assert (by_id[event_id].recorded_by_type, by_id[event_id].recorded_by_id) == key
        assert by_id[event_id].tenant_id == tenant.id
    assert (by_id[over_grpc.id].actor_type, by_id[over_grpc.id].actor_id) == key
    assert (by_id[for_someone.id].actor_type, by_id[for_someone.id].actor_id) == (
        audit_pb2.AUDIT_ACTOR_TYPE_USER,
        "end-user-1",
    )
    reader = key_with("audit.read")
    error = refused_with(stack, (("x-api-key", reader.secret),), app_event())
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "audit.write" in error.details()
    assert verify(stack, tenant.owner_token).intact


def refused_with(
    stack: Stack, metadata: tuple[tuple[str, str], ...], *events: audit_service_pb2.ApplicationAuditEvent
) -> grpc.RpcError:
    request = audit_service_pb2.BatchCreateAuditEventsRequest(events=events)
    return rpc_error(lambda: stack.audit.BatchCreateAuditEvents(request, metadata=metadata, timeout=30))
