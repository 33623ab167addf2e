"""Bad input over gRPC: INVALID_ARGUMENT naming the field, from every service, never INTERNAL."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import auth_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from tests.stack import GATEWAY_TOKEN, OPERATOR_EMAIL, OPERATOR_PASSWORD, Stack, bearer, eventually, rpc_error


def invalid(error: grpc.RpcError, field: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert error.details().startswith(f"{field}:"), error.details()


def create_request(slug: str, **owner: str) -> tenants_service_pb2.CreateTenantRequest:
    return tenants_service_pb2.CreateTenantRequest(
        name="Bad Input Co",
        slug=slug,
        owner=tenants_service_pb2.TenantOwner(
            **{"email": f"owner@{slug}.test", "full_name": "Owner", "password": "owner-password-1", **owner}
        ),
    )


def test_nul_in_any_string_is_refused_naming_the_field(stack: Stack) -> None:
    operator = bearer(stack.operator_token())
    slug = f"nul-{uuid.uuid4().hex[:8]}"
    for request, field in [
        (create_request(slug, full_name="Own\x00er"), "owner.full_name"),
        (create_request(slug, email="own\x00er@x.test"), "owner.email"),
        (tenants_service_pb2.CreateTenantRequest(name="A\x00", slug=slug), "name"),
    ]:
        invalid(rpc_error(lambda r=request: stack.tenants.CreateTenant(r, metadata=operator, timeout=10)), field)
    tenant = stack.create_tenant("nul")
    owner = bearer(tenant.owner_token)
    for settings, field in [({"k\x00": 1}, "settings (a key)"), ({"k": ["a", "b\x00"]}, "settings.k[1]")]:
        update = tenants_service_pb2.UpdateMyTenantRequest(update_mask={"paths": ["settings"]})
        update.tenant.settings.update(settings)
        error = rpc_error(lambda u=update: stack.tenants.UpdateMyTenant(u, metadata=owner, timeout=10))
        invalid(error, f"tenant.{field}")
    audit_filter = audit_service_pb2.ListAuditEventsRequest(action="tenant\x00")
    invalid(rpc_error(lambda: stack.audit.ListAuditEvents(audit_filter, metadata=owner, timeout=10)), "action")


def test_a_nul_in_the_owner_leaves_no_tenant_holding_the_slug(stack: Stack) -> None:
    operator = bearer(stack.operator_token())
    slug = f"held-{uuid.uuid4().hex[:8]}"
    refused = rpc_error(
        lambda: stack.tenants.CreateTenant(create_request(slug, full_name="A\x00B"), metadata=operator, timeout=10)
    )
    invalid(refused, "owner.full_name")
    assert stack.sql("SELECT count(*) FROM tenants.tenants WHERE slug = %s", (slug,))[0][0] == 0
    other_owner = create_request(slug, email=f"someone-else@{slug}.test")
    assert stack.tenants.CreateTenant(other_owner, metadata=operator, timeout=30).slug == slug


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_settings_numbers_must_be_finite(stack: Stack, number: float) -> None:
    request = create_request(f"nan-{uuid.uuid4().hex[:8]}")
    request.settings.update({"limits": {"seats": number}})
    error = rpc_error(lambda: stack.tenants.CreateTenant(request, metadata=bearer(stack.operator_token()), timeout=10))
    invalid(error, "settings.limits.seats")


def test_settings_nested_too_deep_are_refused(stack: Stack) -> None:
    request = create_request(f"deep-{uuid.uuid4().hex[:8]}")
    value: dict = {}  # type: ignore[type-arg]
    for _ in range(25):
        value = {"a": value}
    request.settings.update(value)
    error = rpc_error(lambda: stack.tenants.CreateTenant(request, metadata=bearer(stack.operator_token()), timeout=10))
    invalid(error, "settings" + ".a" * 21)


@pytest.mark.parametrize(
    ("start", "problem"),
    [
        (timestamp_pb2.Timestamp(seconds=-62_135_596_801), "must be between"),
        (timestamp_pb2.Timestamp(seconds=253_402_300_800), "must be between"),
        (timestamp_pb2.Timestamp(seconds=0, nanos=-1), "nanos"),
        (timestamp_pb2.Timestamp(seconds=0, nanos=1_000_000_000), "nanos"),
    ],
)
def test_timestamps_out_of_range_are_refused(stack: Stack, start: timestamp_pb2.Timestamp, problem: str) -> None:
    request = audit_service_pb2.ListAuditEventsRequest(start_time=start)
    error = rpc_error(lambda: stack.audit.ListAuditEvents(request, metadata=bearer(stack.operator_token()), timeout=10))
    invalid(error, "start_time")
    assert problem in error.details()


def test_a_required_field_left_empty_is_named(stack: Stack) -> None:
    operator = bearer(stack.operator_token())
    error = rpc_error(
        lambda: stack.tenants.SuspendTenant(tenants_service_pb2.SuspendTenantRequest(), metadata=operator, timeout=10)
    )
    invalid(error, "tenant_id")
    no_owner = tenants_service_pb2.CreateTenantRequest(name="X", slug=f"x-{uuid.uuid4().hex[:6]}")
    invalid(rpc_error(lambda: stack.tenants.CreateTenant(no_owner, metadata=operator, timeout=10)), "owner")


def test_bytes_that_are_not_the_message_are_invalid_argument(stack: Stack) -> None:
    call = stack.channels["auth"].unary_unary("/tenantry.auth.v1.AuthService/Login")
    error = rpc_error(lambda: call(b"\x0a\xff\xff\xff\xff\x0f", timeout=10))
    invalid(error, "request")


def _length_delimited(tag: int, payload: bytes) -> bytes:
    size, length = bytearray(), len(payload)
    while True:
        size.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            return bytes([tag]) + bytes(size) + payload


def test_a_struct_deeper_than_the_decoder_allows_is_invalid_argument(stack: Stack) -> None:
    # Built by hand: protobuf itself refuses to build a message this deep.
    value = struct_pb2.Value(string_value="x").SerializeToString()
    for _ in range(60):
        value = _length_delimited(0x32, _length_delimited(0x0A, value))  # Value.list_value.values[0]
    entry = _length_delimited(0x0A, b"deep") + _length_delimited(0x12, value)
    settings = _length_delimited(0x22, _length_delimited(0x0A, entry))  # CreateTenantRequest.settings
    raw = create_request(f"decoder-{uuid.uuid4().hex[:6]}").SerializeToString() + settings
    call = stack.channels["tenants"].unary_unary("/tenantry.tenants.v1.TenantService/CreateTenant")
    error = rpc_error(lambda: call(raw, metadata=bearer(stack.operator_token()), timeout=10))
    invalid(error, "request")


def test_a_slug_with_a_trailing_newline_is_refused(stack: Stack) -> None:
    request = create_request(f"nl-{uuid.uuid4().hex[:6]}")
    request.slug += "\n"
    error = rpc_error(lambda: stack.tenants.CreateTenant(request, metadata=bearer(stack.operator_token()), timeout=10))
    invalid(error, "slug")


def test_a_password_with_nul_is_refused_and_its_prefix_never_logs_in(stack: Stack) -> None:
    slug = f"pw-{uuid.uuid4().hex[:6]}"
    refused = rpc_error(
        lambda: stack.tenants.CreateTenant(
            create_request(slug, password="abc\x00abc\x00abc"), metadata=bearer(stack.operator_token()), timeout=10
        )
    )
    invalid(refused, "owner.password")
    tenant = stack.create_tenant("pw")
    login = rpc_error(lambda: stack.login(tenant.owner_email, "owner-password-1\x00anything", tenant.slug))
    invalid(login, "password")


def test_compatibility_look_alike_emails_are_one_account(stack: Stack) -> None:
    tenant = stack.create_tenant("nfkc")
    local, _, domain = tenant.owner_email.partition("@")
    # Fullwidth capitals (U+FF21..): NFKC makes them ASCII capitals, case folding lowercase.
    fullwidth = "".join(chr(ord(c) - ord("a") + 0xFF21) if "a" <= c <= "z" else c for c in local)
    tokens = stack.login(f"{fullwidth}@{domain}", "owner-password-1", tenant.slug)
    assert tokens.access_token
    operator = bearer(stack.operator_token())
    duplicate = create_request(f"dup-{uuid.uuid4().hex[:6]}", email=f"{fullwidth}@{domain}", password="other-pass-1")
    stack.tenants.CreateTenant(duplicate, metadata=operator, timeout=30)
    users = stack.sql("SELECT count(*) FROM auth.users WHERE email = %s", (tenant.owner_email,))
    assert users[0][0] == 1


def test_a_direct_callers_forwarded_address_is_not_recorded(stack: Stack) -> None:
    forged = (
        ("x-forwarded-for", "203.0.113.66"),
        ("x-client-user-agent", "forged-agent/1"),
        ("x-request-id", f"forged-{uuid.uuid4().hex[:8]}"),
    )
    stack.auth.Login(
        auth_service_pb2.LoginRequest(email=OPERATOR_EMAIL, password=OPERATOR_PASSWORD), metadata=forged, timeout=10
    )
    wrong_token = (("x-gateway-token", "not-" + GATEWAY_TOKEN), *forged[:2], ("x-request-id", forged[2][1] + "-b"))
    stack.auth.Login(
        auth_service_pb2.LoginRequest(email=OPERATOR_EMAIL, password=OPERATOR_PASSWORD),
        metadata=wrong_token,
        timeout=10,
    )
    for request_id in (forged[2][1], forged[2][1] + "-b"):
        stored = eventually(
            lambda r=request_id: stack.sql(
                "SELECT host(ip_address), user_agent FROM audit.events WHERE request_id = %s", (r,)
            )
        )
        assert stored[0][0] == "127.0.0.1" and stored[0][1] != "forged-agent/1"


def test_the_gateways_forwarded_address_is_recorded(stack: Stack) -> None:
    request_id = f"gateway-{uuid.uuid4().hex[:8]}"
    stack.auth.Login(
        auth_service_pb2.LoginRequest(email=OPERATOR_EMAIL, password=OPERATOR_PASSWORD),
        metadata=(
            ("x-gateway-token", GATEWAY_TOKEN),
            ("x-forwarded-for", "203.0.113.67"),
            ("x-client-user-agent", "browser/2"),
            ("x-request-id", request_id),
        ),
        timeout=10,
    )
    stored = eventually(
        lambda: stack.sql("SELECT host(ip_address), user_agent FROM audit.events WHERE request_id = %s", (request_id,))
    )
    assert stored[0] == ("203.0.113.67", "browser/2")
