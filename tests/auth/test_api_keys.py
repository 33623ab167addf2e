"""API keys over gRPC: made, listed, used against every service, refused when they should be."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import jwt
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc, roles_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from tests.stack import API_KEY_HASH_KEY, Stack, Tenant, bearer, eventually, rpc_error

KEY_FORMAT = re.compile(r"tnt_[a-z2-7]{8}_[a-z2-7]{52}")


def api_keys(stack: Stack) -> api_keys_service_pb2_grpc.ApiKeyServiceStub:
    return api_keys_service_pb2_grpc.ApiKeyServiceStub(stack.channels["auth"])


def create_key(
    stack: Stack, token: str, permissions: list[str], *, name: str = "ci", expire_time: datetime | None = None
) -> api_keys_service_pb2.CreateApiKeyResponse:
    request = api_keys_service_pb2.CreateApiKeyRequest(name=name, permissions=permissions)
    if expire_time is not None:
        request.expire_time.FromDatetime(expire_time)
    return api_keys(stack).CreateApiKey(request, metadata=bearer(token), timeout=10)


def wrong_secret(key: str) -> str:
    """The key with its last character changed."""
    return key[:-1] + ("a" if key[-1] != "a" else "b")


def with_key(key: str) -> tuple[tuple[str, str], ...]:
    return (("x-api-key", key),)


def my_tenant(stack: Stack, metadata: tuple[tuple[str, str], ...]) -> str:
    return str(stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=metadata, timeout=10).id)


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Tenant:
    return stack.create_tenant("keys")


def test_a_key_is_shown_once_and_stored_only_as_its_keyed_hash(stack: Stack, tenant: Tenant) -> None:
    created = create_key(stack, tenant.owner_token, ["tenant.read", "app.reports.read"], name="reporting")
    secret = created.secret
    assert KEY_FORMAT.fullmatch(secret)
    assert secret.split("_")[1] == created.api_key.prefix
    assert created.api_key.state == api_keys_service_pb2.API_KEY_STATE_ACTIVE
    assert list(created.api_key.permissions) == ["app.reports.read", "tenant.read"]
    assert not created.api_key.HasField("last_used_at") and not created.api_key.HasField("expire_time")

    (stored,) = stack.sql("SELECT secret_hash FROM auth.api_keys WHERE id = %s", (created.api_key.id,))
    assert bytes(stored[0]) == hmac.new(API_KEY_HASH_KEY.encode(), secret.encode(), hashlib.sha256).digest()

    listed = api_keys(stack).ListApiKeys(api_keys_service_pb2.ListApiKeysRequest(), metadata=bearer(tenant.owner_token))
    mine = [key for key in listed.api_keys if key.id == created.api_key.id]
    assert len(mine) == 1 and mine[0].name == "reporting" and mine[0].prefix == created.api_key.prefix
    assert secret not in str(listed) and secret.split("_")[2] not in str(listed)
    got = api_keys(stack).GetApiKey(
        api_keys_service_pb2.GetApiKeyRequest(id=created.api_key.id), metadata=bearer(tenant.owner_token)
    )
    assert got.created_by == jwt.decode(tenant.owner_token, options={"verify_signature": False})["sub"]


def test_a_key_works_against_every_service_in_either_header(stack: Stack, tenant: Tenant) -> None:
    secret = create_key(stack, tenant.owner_token, ["tenant.read", "audit.read", "api_keys.read"]).secret
    assert my_tenant(stack, with_key(secret)) == tenant.id
    assert my_tenant(stack, bearer(secret)) == tenant.id
    events = stack.audit.ListAuditEvents(audit_service_pb2.ListAuditEventsRequest(page_size=5), metadata=bearer(secret))
    assert all(event.tenant_id == tenant.id for event in events.events)
    listed = api_keys(stack).ListApiKeys(api_keys_service_pb2.ListApiKeysRequest(), metadata=with_key(secret))
    assert listed.api_keys


def test_the_exchanged_token_speaks_for_the_key_and_no_longer_than_five_minutes(stack: Stack, tenant: Tenant) -> None:
    created = create_key(stack, tenant.owner_token, ["tenant.read"])
    exchanged = api_keys(stack).ExchangeApiKey(api_keys_service_pb2.ExchangeApiKeyRequest(api_key=created.secret))
    claims = jwt.decode(exchanged.access_token, options={"verify_signature": False})
    assert claims["sid"] == claims["sub"] == created.api_key.id
    assert claims["actor_type"] == "api_key" and claims["tid"] == tenant.id and claims["perms"] == ["tenant.read"]
    assert 0 < claims["exp"] - claims["iat"] <= 300 and exchanged.expires_in <= 300
    used = api_keys(stack).GetApiKey(
        api_keys_service_pb2.GetApiKeyRequest(id=created.api_key.id), metadata=bearer(tenant.owner_token)
    )
    assert used.HasField("last_used_at")
    assert abs(used.last_used_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC)) < timedelta(seconds=30)


def test_malformed_and_unknown_keys_are_unauthenticated_with_a_clear_message(stack: Stack) -> None:
    for header in (("x-api-key", "sk_live_abcdef"), ("authorization", "Bearer tnt_abc"), ("x-api-key", "tnt_")):
        error = rpc_error(lambda header=header: my_tenant(stack, (header,)))  # type: ignore[misc]
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "malformed" in (error.details() or "") and "expected tnt_<prefix>_<secret>" in (error.details() or "")
    unknown = "tnt_aaaaaaaa_" + "b" * 52
    error = rpc_error(lambda: my_tenant(stack, with_key(unknown)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details() == "API key is not valid"


def test_a_right_prefix_with_a_wrong_secret_is_refused_like_an_unknown_key(stack: Stack, tenant: Tenant) -> None:
    secret = create_key(stack, tenant.owner_token, ["tenant.read"]).secret
    forged = wrong_secret(secret)
    error = rpc_error(lambda: my_tenant(stack, with_key(forged)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details() == "API key is not valid"


def test_both_headers_at_once_are_refused(stack: Stack, tenant: Tenant) -> None:
    secret = create_key(stack, tenant.owner_token, ["tenant.read"]).secret
    error = rpc_error(lambda: my_tenant(stack, (*bearer(tenant.owner_token), ("x-api-key", secret))))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and "not both" in (error.details() or "")


def test_a_revoked_key_is_refused_by_every_service_within_a_second(stack: Stack, tenant: Tenant) -> None:
    created = create_key(stack, tenant.owner_token, ["tenant.read", "audit.read"])
    secret = created.secret
    # Each service has exchanged the key and holds its token.
    assert my_tenant(stack, with_key(secret)) == tenant.id
    stack.audit.ListAuditEvents(audit_service_pb2.ListAuditEventsRequest(page_size=1), metadata=with_key(secret))

    revoked = api_keys(stack).RevokeApiKey(
        api_keys_service_pb2.RevokeApiKeyRequest(id=created.api_key.id), metadata=bearer(tenant.owner_token)
    )
    started = time.monotonic()
    assert revoked.state == api_keys_service_pb2.API_KEY_STATE_REVOKED and revoked.HasField("revoked_at")

    def refused_everywhere() -> bool:
        calls = [
            lambda: my_tenant(stack, with_key(secret)),
            lambda: stack.audit.ListAuditEvents(
                audit_service_pb2.ListAuditEventsRequest(page_size=1), metadata=with_key(secret)
            ),
        ]
        return all(rpc_error(call).code() == grpc.StatusCode.UNAUTHENTICATED for call in calls)  # type: ignore[arg-type]

    eventually(lambda: _succeeds(refused_everywhere), timeout=1.0, interval=0.02)
    assert time.monotonic() - started < 1.0
    error = rpc_error(
        lambda: api_keys(stack).ExchangeApiKey(api_keys_service_pb2.ExchangeApiKeyRequest(api_key=secret))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details() == "API key has been revoked"
    again = api_keys(stack).RevokeApiKey(
        api_keys_service_pb2.RevokeApiKeyRequest(id=created.api_key.id), metadata=bearer(tenant.owner_token)
    )
    assert again.revoked_at == revoked.revoked_at


def _succeeds(check: object) -> bool:
    try:
        return bool(check())  # type: ignore[operator]
    except AssertionError:
        return False


def test_an_expired_key_is_refused_and_its_tokens_never_outlive_it(stack: Stack, tenant: Tenant) -> None:
    expiry = datetime.now(UTC) + timedelta(seconds=6)
    created = create_key(stack, tenant.owner_token, ["tenant.read"], expire_time=expiry)
    exchanged = api_keys(stack).ExchangeApiKey(api_keys_service_pb2.ExchangeApiKeyRequest(api_key=created.secret))
    claims = jwt.decode(exchanged.access_token, options={"verify_signature": False})
    assert claims["exp"] <= expiry.timestamp() and exchanged.expires_in <= 6
    assert my_tenant(stack, with_key(created.secret)) == tenant.id

    time.sleep(max(0.0, expiry.timestamp() - time.time()) + 0.1)
    error = rpc_error(
        lambda: api_keys(stack).ExchangeApiKey(api_keys_service_pb2.ExchangeApiKeyRequest(api_key=created.secret))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details() == "API key has expired"
    # The service's cached token expired with the key (5 s of clock leeway at most).
    eventually(
        lambda: rpc_error(lambda: my_tenant(stack, with_key(created.secret))).code() == grpc.StatusCode.UNAUTHENTICATED,
        timeout=8,
    )
    listed = api_keys(stack).GetApiKey(
        api_keys_service_pb2.GetApiKeyRequest(id=created.api_key.id), metadata=bearer(tenant.owner_token)
    )
    assert listed.state == api_keys_service_pb2.API_KEY_STATE_EXPIRED


def test_an_expiry_in_the_past_is_invalid(stack: Stack, tenant: Tenant) -> None:
    error = rpc_error(
        lambda: create_key(stack, tenant.owner_token, ["tenant.read"], expire_time=datetime.now(UTC) - timedelta(1))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and (error.details() or "").startswith("expire_time")


def test_nobody_makes_a_key_with_more_than_they_hold(stack: Stack, tenant: Tenant) -> None:
    stack.roles.CreateRole(
        roles_service_pb2.CreateRoleRequest(name="key_maker", permissions=["api_keys.manage", "tenant.read"]),
        metadata=bearer(tenant.owner_token),
    )
    maker = stack.add_member(tenant, f"maker-{uuid.uuid4().hex[:6]}@keys.test", role="key_maker").access_token
    assert create_key(stack, maker, ["tenant.read"]).secret
    error = rpc_error(lambda: create_key(stack, maker, ["tenant.read", "members.read"]))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "members.read" in (error.details() or "")
    error = rpc_error(lambda: create_key(stack, maker, ["app.anything"]))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "app.anything" in (error.details() or "")
    for bad in (["platform.tenants.manage"], ["nonsense"], []):
        error = rpc_error(lambda bad=bad: create_key(stack, tenant.owner_token, bad))  # type: ignore[misc]
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and (error.details() or "").startswith("permissions")
    viewer = stack.add_member(tenant, f"viewer-{uuid.uuid4().hex[:6]}@keys.test", role="viewer").access_token
    error = rpc_error(lambda: create_key(stack, viewer, ["tenant.read"]))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "api_keys.manage" in (error.details() or "")


def test_a_key_does_only_what_its_permissions_allow_and_never_makes_keys(stack: Stack, tenant: Tenant) -> None:
    reader = create_key(stack, tenant.owner_token, ["tenant.read"]).secret
    error = rpc_error(
        lambda: api_keys(stack).ListApiKeys(api_keys_service_pb2.ListApiKeysRequest(), metadata=with_key(reader))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "api_keys.read" in (error.details() or "")
    manager = create_key(stack, tenant.owner_token, ["api_keys.manage", "tenant.read"]).secret
    error = rpc_error(lambda: create_key_with(stack, manager))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "API key cannot create" in (error.details() or "")


def create_key_with(stack: Stack, key: str) -> object:
    return api_keys(stack).CreateApiKey(
        api_keys_service_pb2.CreateApiKeyRequest(name="copy", permissions=["tenant.read"]), metadata=with_key(key)
    )


def test_a_key_never_reaches_another_tenant(stack: Stack, tenant: Tenant) -> None:
    other = stack.create_tenant("keys-other")
    created = create_key(stack, tenant.owner_token, ["tenant.read", "api_keys.read", "api_keys.manage"])
    assert my_tenant(stack, with_key(created.secret)) == tenant.id
    # The key lists its own tenant's keys only.
    other_key = create_key(stack, other.owner_token, ["tenant.read"]).api_key
    listed = api_keys(stack).ListApiKeys(api_keys_service_pb2.ListApiKeysRequest(), metadata=with_key(created.secret))
    assert other_key.id not in {key.id for key in listed.api_keys}
    # The other tenant's owner neither sees nor revokes it.
    listed = api_keys(stack).ListApiKeys(api_keys_service_pb2.ListApiKeysRequest(), metadata=bearer(other.owner_token))
    assert created.api_key.id not in {key.id for key in listed.api_keys}
    for call in (
        lambda: api_keys(stack).GetApiKey(
            api_keys_service_pb2.GetApiKeyRequest(id=created.api_key.id), metadata=bearer(other.owner_token)
        ),
        lambda: api_keys(stack).RevokeApiKey(
            api_keys_service_pb2.RevokeApiKeyRequest(id=created.api_key.id), metadata=bearer(other.owner_token)
        ),
    ):
        assert rpc_error(call).code() == grpc.StatusCode.NOT_FOUND  # type: ignore[arg-type]
    assert my_tenant(stack, with_key(created.secret)) == tenant.id


def test_row_level_security_hides_keys_from_other_tenants_and_from_no_tenant(stack: Stack, tenant: Tenant) -> None:
    created = create_key(stack, tenant.owner_token, ["tenant.read"]).api_key
    count = "SELECT count(*) FROM auth.api_keys WHERE id = %s"
    assert stack.sql(count, (created.id,), role="tenantry_auth", tenant=tenant.id)[0][0] == 1
    assert stack.sql(count, (created.id,), role="tenantry_auth", tenant=str(uuid.uuid4()))[0][0] == 0
    assert stack.sql(count, (created.id,), role="tenantry_auth")[0][0] == 0
    assert stack.sql("SELECT count(*) FROM auth.api_keys", role="tenantry_auth", tenant="platform")[0][0] == 0


def test_creation_and_revocation_are_audited_without_the_secret(stack: Stack, tenant: Tenant) -> None:
    created = create_key(stack, tenant.owner_token, ["tenant.read"], name="audited")
    api_keys(stack).RevokeApiKey(
        api_keys_service_pb2.RevokeApiKeyRequest(id=created.api_key.id), metadata=bearer(tenant.owner_token)
    )

    def events() -> list[object]:
        found = [
            event
            for event in stack.audit_events(tenant.owner_token, resource_type="api_key")
            if event.resource_id == created.api_key.id
        ]
        assert {event.action for event in found} == {"api_key.created", "api_key.revoked"}
        return found

    found = eventually(events)
    assert created.secret not in str(found) and created.secret.split("_")[2] not in str(found)


def test_page_tokens_walk_the_keys_newest_first(stack: Stack) -> None:
    tenant = stack.create_tenant("keys-pages")
    made = [create_key(stack, tenant.owner_token, ["tenant.read"], name=f"k{i}").api_key.id for i in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = api_keys(stack).ListApiKeys(
            api_keys_service_pb2.ListApiKeysRequest(page_size=2, page_token=token), metadata=bearer(tenant.owner_token)
        )
        seen += [key.id for key in page.api_keys]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(made))


def test_no_secret_reaches_any_log(stack: Stack, tenant: Tenant) -> None:
    created = create_key(stack, tenant.owner_token, ["tenant.read"])
    my_tenant(stack, with_key(created.secret))
    rpc_error(lambda: my_tenant(stack, with_key(wrong_secret(created.secret))))
    time.sleep(0.3)
    for name in ("auth", "tenants", "audit"):
        text = (stack.log_dir / f"{name}.log").read_text()
        assert created.secret.split("_")[2] not in text, name
        assert API_KEY_HASH_KEY not in text, name


def test_a_suspended_tenants_keys_are_refused_within_a_second_and_work_again_after(stack: Stack) -> None:
    tenant = stack.create_tenant("keys-suspended")
    secret = create_key(stack, tenant.owner_token, ["tenant.read"]).secret
    assert my_tenant(stack, with_key(secret)) == tenant.id
    operator = bearer(stack.operator_token())
    stack.tenants.SuspendTenant(tenants_service_pb2.SuspendTenantRequest(tenant_id=tenant.id), metadata=operator)
    started = time.monotonic()
    eventually(
        lambda: rpc_error(lambda: my_tenant(stack, with_key(secret))).code() == grpc.StatusCode.UNAUTHENTICATED,
        timeout=1.0,
        interval=0.02,
    )
    assert time.monotonic() - started < 1.0
    error = rpc_error(
        lambda: api_keys(stack).ExchangeApiKey(api_keys_service_pb2.ExchangeApiKeyRequest(api_key=secret))
    )
    assert error.details() == "the API key's tenant is suspended"
    stack.tenants.ReactivateTenant(tenants_service_pb2.ReactivateTenantRequest(tenant_id=tenant.id), metadata=operator)
    # A fresh exchange works at once; its token is refused by services until the suspension's
    # revocation lapses (the token lifetime and the clock leeway).
    assert api_keys(stack).ExchangeApiKey(api_keys_service_pb2.ExchangeApiKeyRequest(api_key=secret)).access_token


def test_writes_into_another_tenant_and_lookups_beyond_the_bound_prefix_are_refused(stack: Stack) -> None:
    first, second = stack.create_tenant("keys-rls"), stack.create_tenant("keys-rls")
    mine = create_key(stack, first.owner_token, ["tenant.read"]).api_key
    theirs = create_key(stack, second.owner_token, ["tenant.read"]).api_key
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        stack.sql(
            "INSERT INTO auth.api_keys (id, tenant_id, name, prefix, secret_hash, permissions, created_by, created_at)"
            " VALUES (gen_random_uuid(), %s, 'x', 'zzzzzzzz', decode(repeat('00', 32), 'hex'), '{}', gen_random_uuid(),"
            " now())",
            (second.id,),
            role="tenantry_auth",
            tenant=first.id,
        )
    # The exchange binds a prefix: that key, and no other, becomes visible.
    by_prefix = "SELECT set_config('app.api_key_prefix', %s, true), (SELECT array_agg(id::text) FROM auth.api_keys)"
    (row,) = stack.sql(by_prefix, (mine.prefix,), role="tenantry_auth")
    assert row[1] == [mine.id] and theirs.id not in row[1]
    (row,) = stack.sql(by_prefix, ("",), role="tenantry_auth")
    assert row[1] is None


def test_a_service_exchanges_a_key_once_not_per_request(stack: Stack, tenant: Tenant) -> None:
    created = create_key(stack, tenant.owner_token, ["tenant.read"])
    assert my_tenant(stack, with_key(created.secret)) == tenant.id
    last_use = "SELECT last_used_at FROM auth.api_keys WHERE id = %s"
    (after_first,) = stack.sql(last_use, (created.api_key.id,))
    assert after_first[0] is not None
    for _ in range(20):
        assert my_tenant(stack, with_key(created.secret)) == tenant.id
    # Every exchange moves the key's last use: it stayed, so twenty reads cost auth nothing.
    assert stack.sql(last_use, (created.api_key.id,)) == [after_first]


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(
    value=st.one_of(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=90),
        st.builds(lambda tail: "tnt_" + tail, st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E))),
    ),
    header=st.sampled_from(["x-api-key", "authorization"]),
)
def test_any_presented_key_is_unauthenticated_over_grpc_never_internal(stack: Stack, value: str, header: str) -> None:
    sent = f"Bearer {value}" if header == "authorization" else value
    error = rpc_error(lambda: my_tenant(stack, ((header, sent),)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (header, sent, error.details())
