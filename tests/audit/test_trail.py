"""The audit trail: one event per mutation, append-only in the database, filters and pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from tenantry.audit.v1 import audit_pb2, audit_service_pb2
from tenantry.auth.v1 import auth_service_pb2, members_service_pb2
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2

from tests.audit.tampering import outbox_drained
from tests.stack import INTERNAL, OWNER_PASSWORD, Stack, bearer, eventually, rpc_error


def with_request_id(metadata: tuple[tuple[str, str], ...] = ()) -> tuple[str, tuple[tuple[str, str], ...]]:
    request_id = f"req-{uuid.uuid4().hex}"
    return request_id, (*metadata, ("x-request-id", request_id))


def events_for(stack: Stack, request_id: str) -> list[str]:
    """Every stored event of one request, straight from the table."""
    return [row[0] for row in stack.sql("SELECT action FROM audit.events WHERE request_id = %s", (request_id,))]


def test_each_mutation_leaves_exactly_one_event(stack: Stack) -> None:
    tenant = stack.create_tenant()
    operator = bearer(stack.operator_token())
    owner = bearer(tenant.owner_token)
    mutations = {
        "tenant.updated": lambda md: stack.tenants.UpdateMyTenant(
            tenants_service_pb2.UpdateMyTenantRequest(
                tenant=tenants_pb2.Tenant(name="Audited"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
            ),
            metadata=owner + md,
        ),
        "invitation.created": lambda md: stack.members.CreateInvitation(
            members_service_pb2.CreateInvitationRequest(email=f"m-{uuid.uuid4().hex[:8]}@example.test", role="admin"),
            metadata=owner + md,
        ),
        "tenant.suspended": lambda md: stack.tenants.SuspendTenant(
            tenants_service_pb2.SuspendTenantRequest(tenant_id=tenant.id), metadata=operator + md
        ),
        "tenant.reactivated": lambda md: stack.tenants.ReactivateTenant(
            tenants_service_pb2.ReactivateTenantRequest(tenant_id=tenant.id), metadata=operator + md
        ),
        "auth.login.succeeded": lambda md: stack.auth.Login(
            auth_service_pb2.LoginRequest(email=tenant.owner_email, password=OWNER_PASSWORD), metadata=md
        ),
    }
    for action, call in mutations.items():
        request_id, metadata = with_request_id()
        call(metadata)
        expected = [action]
        if action in ("tenant.suspended", "tenant.reactivated"):
            # The operator's act is in the tenant's trail and in the platform's own.
            expected = [action, action]
        if action == "tenant.suspended":
            expected.append("tenant.sessions_revoked")
        count = len(expected)
        stored = eventually(lambda r=request_id, n=count: len(events_for(stack, r)) >= n and events_for(stack, r))
        assert sorted(stored) == sorted(expected), action


def test_login_refresh_reuse_and_logout_are_each_recorded_once(stack: Stack) -> None:
    tenant = stack.create_tenant()
    steps: list[tuple[str, str]] = []

    request_id, md = with_request_id()
    rpc_error(
        lambda: stack.auth.Login(
            auth_service_pb2.LoginRequest(email=tenant.owner_email, password="wrong-pass"), metadata=md
        )
    )
    steps.append(("auth.login.failed", request_id))

    request_id, md = with_request_id()
    renewed = stack.auth.Refresh(auth_service_pb2.RefreshRequest(refresh_token=tenant.owner_refresh), metadata=md)
    steps.append(("auth.token.refreshed", request_id))

    request_id, md = with_request_id()
    rpc_error(
        lambda: stack.auth.Refresh(auth_service_pb2.RefreshRequest(refresh_token=tenant.owner_refresh), metadata=md)
    )
    steps.append(("auth.refresh.reused", request_id))

    fresh = stack.login(tenant.owner_email, OWNER_PASSWORD)
    request_id, md = with_request_id(bearer(fresh.access_token))
    stack.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=md)
    steps.append(("auth.logout", request_id))

    for action, request_id in steps:
        assert eventually(lambda r=request_id: events_for(stack, r)) == [action]
    assert renewed.access_token


def test_failed_login_of_an_unknown_email_is_a_platform_event(stack: Stack) -> None:
    email = f"ghost-{uuid.uuid4().hex[:8]}@example.test"
    rpc_error(lambda: stack.login(email, "whatever-password"))
    operator = stack.operator_token()

    def found() -> list[audit_pb2.AuditEvent]:
        events = stack.audit_events(operator, action="auth.login.failed")
        return [event for event in events if event.details["email"] == email]

    (event,) = eventually(found)
    assert event.tenant_id == "" and event.details["reason"] == "unknown_user"


def test_no_secret_reaches_the_audit_trail(stack: Stack) -> None:
    tenant = stack.create_tenant()
    stack.login(tenant.owner_email, OWNER_PASSWORD)
    # Every event of the tenant's creation and logins, not just the first to arrive.
    eventually(lambda: outbox_drained(stack, tenant.id), timeout=15)
    assert stack.audit_events(tenant.owner_token, action="auth.login.succeeded")
    dump = str(stack.sql("SELECT details::text FROM audit.events"))
    assert OWNER_PASSWORD not in dump and tenant.owner_refresh not in dump and tenant.owner_token not in dump


@pytest.mark.parametrize(
    "statement", ["UPDATE audit.events SET action = 'x'", "DELETE FROM audit.events", "TRUNCATE audit.events"]
)
def test_the_table_refuses_changes_even_to_its_owner(stack: Stack, statement: str) -> None:
    stack.create_tenant()
    eventually(lambda: stack.sql("SELECT count(*) FROM audit.events")[0][0] > 0)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        stack.sql(statement)


def test_partitions_refuse_truncate_too(stack: Stack) -> None:
    partition = stack.sql(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'audit.events'::regclass LIMIT 1"
    )[0][0]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        stack.sql(f"TRUNCATE {partition}")


@pytest.mark.parametrize(
    "statement", ["UPDATE audit.events SET action = 'x'", "DELETE FROM audit.events", "TRUNCATE audit.events"]
)
def test_the_service_role_has_no_right_to_change_events(stack: Stack, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        stack.sql(statement, role="tenantry_audit", tenant="platform")


def test_coming_months_have_partitions(stack: Stack) -> None:
    names = {row[0] for row in stack.sql("SELECT relname FROM pg_class WHERE relname LIKE 'events_20%%'")}
    month = datetime.now(UTC).replace(day=1)
    for _ in range(4):
        assert f"events_{month:%Y_%m}" in names
        month = (month + timedelta(days=32)).replace(day=1)


def event(tenant_id: str = "", **fields) -> audit_pb2.AuditEvent:  # type: ignore[no-untyped-def]
    message = audit_pb2.AuditEvent(
        id=fields.pop("id", str(uuid.uuid4())),
        tenant_id=tenant_id,
        action=fields.pop("action", "test.appended"),
        resource_type="thing",
        resource_id="1",
        **fields,
    )
    if not message.HasField("created_at"):
        message.created_at.FromDatetime(datetime.now(UTC))
    return message


def append(stack: Stack, *events: audit_pb2.AuditEvent) -> int:
    return stack.audit_ingest.AppendAuditEvents(
        audit_service_pb2.AppendAuditEventsRequest(events=events), metadata=INTERNAL
    ).appended


def test_append_is_idempotent_by_event_id(stack: Stack) -> None:
    tenant = stack.create_tenant()
    batch = [event(tenant.id), event(tenant.id), event("")]
    assert append(stack, *batch) == 3
    assert append(stack, *batch) == 0
    ids = tuple(e.id for e in batch)
    assert stack.sql("SELECT count(*) FROM audit.events WHERE id = ANY(%s::uuid[])", (list(ids),))[0][0] == 3


def test_a_bad_event_names_itself_and_nothing_of_the_batch_is_stored(stack: Stack) -> None:
    good, bad = event(), event(action="")
    error = rpc_error(lambda: append(stack, good, bad))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "events[1].action: is required"
    assert stack.sql("SELECT count(*) FROM audit.events WHERE id = %s", (good.id,))[0][0] == 0
    for broken, field in [
        (event(id="nope"), "id"),
        (event(tenant_id="nope"), "tenant_id"),
        (event(ip_address="999.1.1.1"), "ip_address"),
    ]:
        assert rpc_error(lambda b=broken: append(stack, b)).details().startswith(f"events[0].{field}:")


def test_an_event_for_a_month_without_partition_gets_one(stack: Stack) -> None:
    late = event()
    late.created_at.FromDatetime(datetime(2031, 7, 15, tzinfo=UTC))
    assert append(stack, late) == 1
    assert stack.sql("SELECT count(*) FROM pg_class WHERE relname = 'events_2031_07'")[0][0] == 1


def test_ingest_needs_the_internal_token(stack: Stack) -> None:
    tenant = stack.create_tenant()
    for metadata in [(), bearer(tenant.owner_token), (("x-internal-token", "x" * 30),)]:
        error = rpc_error(
            lambda m=metadata: stack.audit_ingest.AppendAuditEvents(
                audit_service_pb2.AppendAuditEventsRequest(events=[event(tenant.id)]), metadata=m
            )
        )
        # A person's valid token is authenticated, but no platform service account: refused as such.
        expected = grpc.StatusCode.PERMISSION_DENIED if metadata and metadata[0][0] == "authorization" else None
        assert error.code() == (expected or grpc.StatusCode.UNAUTHENTICATED)


def test_filters_and_pages(stack: Stack) -> None:
    tenant = stack.create_tenant()
    user = str(uuid.uuid4())
    base = datetime.now(UTC) - timedelta(hours=1)
    batch = []
    for index in range(5):
        item = event(tenant.id, action="doc.edited" if index % 2 else "doc.viewed", user_id=user if index < 2 else "")
        item.created_at.FromDatetime(base + timedelta(minutes=index))
        batch.append(item)
    append(stack, *batch)
    token = tenant.owner_token
    assert len(stack.audit_events(token, action="doc.edited")) == 2
    assert len(stack.audit_events(token, resource_type="thing")) == 5
    assert len(stack.audit_events(token, user_id=user)) == 2
    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromDatetime(base + timedelta(minutes=1))
    end.FromDatetime(base + timedelta(minutes=3))
    assert [e.id for e in stack.audit_events(token, start_time=start, end_time=end)] == [batch[2].id, batch[1].id]

    seen, page = [], ""
    while True:
        reply = stack.audit.ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(resource_type="thing", page_size=2, page_token=page),
            metadata=bearer(token),
        )
        seen += [e.id for e in reply.events]
        page = reply.next_page_token
        if not page:
            break
    assert seen == [e.id for e in reversed(batch)]


def test_bad_filters_name_the_field(stack: Stack) -> None:
    tenant = stack.create_tenant()
    later, earlier = timestamp_pb2.Timestamp(seconds=2_000_000_000), timestamp_pb2.Timestamp(seconds=1_000_000_000)
    cases = {
        "user_id": audit_service_pb2.ListAuditEventsRequest(user_id="nope"),
        "end_time": audit_service_pb2.ListAuditEventsRequest(start_time=later, end_time=earlier),
        "page_size": audit_service_pb2.ListAuditEventsRequest(page_size=-1),
        "page_token": audit_service_pb2.ListAuditEventsRequest(page_token="garbage!"),
    }
    for field, request in cases.items():
        error = rpc_error(lambda r=request: stack.audit.ListAuditEvents(r, metadata=bearer(tenant.owner_token)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith(f"{field}:"), field


def test_viewers_may_not_read_the_trail(stack: Stack) -> None:
    tenant = stack.create_tenant()
    email = f"viewer-{uuid.uuid4().hex[:8]}@example.test"
    viewer = stack.add_member(tenant, email, "viewer").access_token
    assert rpc_error(lambda: stack.audit_events(viewer)).code() == grpc.StatusCode.PERMISSION_DENIED
