"""google.rpc error details from the real services, read over gRPC as any client would.

Every refusal carries a google.rpc.Status in `grpc-status-details-bin` whose code and
message are the call's (rpc_status.from_call checks that), with the detail that lets a
client act without parsing the message: BadRequest, ErrorInfo, RetryInfo, PreconditionFailure.
"""

from __future__ import annotations

import time
import uuid
from typing import TypeVar

import grpc
import jwt
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tenantry.auth.v1 import auth_service_pb2, members_service_pb2, roles_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from kit.error_details import DOMAIN, Precondition, Reason
from tests.auth.test_token_attacks import real_key, sign  # noqa: F401  (real_key is a fixture)
from tests.stack import INTERNAL, Stack, Tenant, bearer, eventually, rpc_error

T = TypeVar("T", bound=Message)


def details(error: grpc.RpcError) -> list[Message]:
    """The call's google.rpc details, unpacked; fails unless the status in them is the call's own."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no details with {error.code()}: {error.details()}"
    unpacked: list[Message] = []
    for holder in status.details:
        for kind in (
            error_details_pb2.BadRequest,
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
            error_details_pb2.PreconditionFailure,
        ):
            if holder.Is(kind.DESCRIPTOR):
                detail = kind()
                holder.Unpack(detail)
                unpacked.append(detail)
    assert len(unpacked) == len(status.details), status
    return unpacked


def one(error: grpc.RpcError, kind: type[T]) -> T:
    found = [detail for detail in details(error) if isinstance(detail, kind)]
    assert len(found) == 1, (kind.__name__, details(error))
    return found[0]


def field_violation(error: grpc.RpcError) -> tuple[str, str]:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    (violation,) = one(error, error_details_pb2.BadRequest).field_violations
    assert error.details() == f"{violation.field}: {violation.description}"
    return violation.field, violation.description


def reason(error: grpc.RpcError, code: grpc.StatusCode) -> error_details_pb2.ErrorInfo:
    assert error.code() == code, (error.code(), error.details())
    info = one(error, error_details_pb2.ErrorInfo)
    assert info.domain == DOMAIN
    return info


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Tenant:
    return stack.create_tenant("details")


def create_request(slug: str, **owner: str) -> tenants_service_pb2.CreateTenantRequest:
    fields = {"email": f"owner@{slug}.test", "full_name": "Owner", "password": "owner-password-1", **owner}
    return tenants_service_pb2.CreateTenantRequest(
        name="Details Co", slug=slug, owner=tenants_service_pb2.TenantOwner(**fields)
    )


# BadRequest ------------------------------------------------------------------


def test_the_request_check_names_the_field_in_a_bad_request(stack: Stack) -> None:
    slug = f"nul-{uuid.uuid4().hex[:8]}"
    operator = bearer(stack.operator_token())
    error = rpc_error(
        lambda: stack.tenants.CreateTenant(create_request(slug, full_name="A\x00B"), metadata=operator, timeout=10)
    )
    assert field_violation(error) == ("owner.full_name", "must not contain NUL characters")
    required = rpc_error(
        lambda: stack.tenants.SuspendTenant(tenants_service_pb2.SuspendTenantRequest(), metadata=operator, timeout=10)
    )
    assert field_violation(required) == ("tenant_id", "is required")


def test_bytes_that_are_not_the_message_are_a_bad_request_of_the_whole_request(stack: Stack) -> None:
    call = stack.channels["auth"].unary_unary("/tenantry.auth.v1.AuthService/Login")
    error = rpc_error(lambda: call(b"\x0a\xff\xff\xff\xff\x0f", timeout=10))
    assert field_violation(error)[0] == "request"


def test_a_services_own_refusal_names_the_field(stack: Stack, tenant: Tenant) -> None:
    login = rpc_error(lambda: stack.login(tenant.owner_email, ""))
    assert field_violation(login) == ("password", "is required")
    role = roles_service_pb2.CreateRoleRequest(name="Bad Name", permissions=["app.x"])
    error = rpc_error(lambda: stack.roles.CreateRole(role, metadata=bearer(tenant.owner_token), timeout=10))
    assert field_violation(error)[0] == "name"


def test_auths_refusal_of_a_new_tenants_owner_keeps_its_field_under_owner(stack: Stack) -> None:
    slug = f"short-{uuid.uuid4().hex[:8]}"
    request = create_request(slug, password="short")
    error = rpc_error(lambda: stack.tenants.CreateTenant(request, metadata=bearer(stack.operator_token()), timeout=10))
    field, description = field_violation(error)
    assert field == "owner.password" and "at least" in description


# ErrorInfo -------------------------------------------------------------------


def get_my_tenant(stack: Stack, token: str | None) -> grpc.RpcError:
    metadata = bearer(token) if token is not None else None
    return rpc_error(
        lambda: stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=metadata, timeout=10)
    )


def test_a_missing_or_garbled_token_says_which(stack: Stack) -> None:
    assert reason(get_my_tenant(stack, None), grpc.StatusCode.UNAUTHENTICATED).reason == Reason.TOKEN_MISSING
    assert reason(get_my_tenant(stack, "not.a.token"), grpc.StatusCode.UNAUTHENTICATED).reason == Reason.TOKEN_INVALID


def test_an_expired_token_says_so_in_every_service(stack: Stack, tenant: Tenant, real_key) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    kid, private, _ = real_key
    claims = jwt.decode(tenant.owner_token, options={"verify_signature": False})
    now = int(time.time())
    expired = sign({**claims, "iat": now - 3600, "nbf": now - 3600, "exp": now - 600}, private, kid)
    assert reason(get_my_tenant(stack, expired), grpc.StatusCode.UNAUTHENTICATED).reason == Reason.TOKEN_EXPIRED
    me = rpc_error(lambda: stack.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(expired), timeout=10))
    assert reason(me, grpc.StatusCode.UNAUTHENTICATED).reason == Reason.TOKEN_EXPIRED


def test_a_logged_out_token_is_revoked(stack: Stack, tenant: Tenant) -> None:
    tokens = stack.login(tenant.owner_email, "owner-password-1", tenant.slug)
    stack.auth.Logout(
        auth_service_pb2.LogoutRequest(),
        metadata=bearer(tokens.access_token),
        timeout=10,
    )
    revoked = eventually(
        lambda: (
            get_my_tenant(stack, tokens.access_token).code() == grpc.StatusCode.UNAUTHENTICATED
            and get_my_tenant(stack, tokens.access_token)
        )
    )
    assert reason(revoked, grpc.StatusCode.UNAUTHENTICATED).reason == Reason.TOKEN_REVOKED


def test_a_missing_permission_is_named(stack: Stack, tenant: Tenant) -> None:
    viewer = stack.add_member(tenant, f"viewer-{uuid.uuid4().hex[:8]}@example.test", "viewer").access_token
    invite = members_service_pb2.CreateInvitationRequest(email="someone@example.test", role="viewer")
    error = rpc_error(lambda: stack.members.CreateInvitation(invite, metadata=bearer(viewer), timeout=10))
    info = reason(error, grpc.StatusCode.PERMISSION_DENIED)
    assert info.reason == Reason.PERMISSION_MISSING
    assert info.metadata["permission"] == "members.invite"
    assert "members.invite" in error.details()


def test_wrong_credentials_and_a_suspended_tenant_have_their_reasons(stack: Stack) -> None:
    suspended = stack.create_tenant("suspended")
    wrong = rpc_error(lambda: stack.login(suspended.owner_email, "wrong-password-1", suspended.slug))
    assert reason(wrong, grpc.StatusCode.UNAUTHENTICATED).reason == Reason.INVALID_CREDENTIALS
    stack.tenants.SuspendTenant(
        tenants_service_pb2.SuspendTenantRequest(tenant_id=suspended.id),
        metadata=bearer(stack.operator_token()),
        timeout=10,
    )
    refused = rpc_error(lambda: stack.login(suspended.owner_email, "owner-password-1", suspended.slug))
    assert reason(refused, grpc.StatusCode.PERMISSION_DENIED).reason == Reason.TENANT_SUSPENDED


def test_an_internal_method_without_a_service_token_says_so(stack: Stack) -> None:
    error = rpc_error(
        lambda: stack.auth_internal.SetTenantStatus(auth_service_pb2.SetTenantStatusRequest(), timeout=10)
    )
    assert reason(error, grpc.StatusCode.UNAUTHENTICATED).reason == Reason.TOKEN_MISSING


def test_an_internal_method_called_by_a_person_says_only_platform_services_may(stack: Stack) -> None:
    error = rpc_error(
        lambda: stack.auth_internal.SetTenantStatus(
            auth_service_pb2.SetTenantStatusRequest(), metadata=bearer(stack.operator_token()), timeout=10
        )
    )
    assert reason(error, grpc.StatusCode.PERMISSION_DENIED).reason == Reason.PLATFORM_SERVICE_REQUIRED


# RetryInfo -------------------------------------------------------------------


def test_a_throttled_login_says_when_to_retry_as_its_retry_after_does(stack: Stack) -> None:
    tenant = stack.create_tenant("throttled")
    for _ in range(5):
        rpc_error(lambda: stack.login(tenant.owner_email, "wrong-password-1"))
    blocked = rpc_error(lambda: stack.login(tenant.owner_email, "owner-password-1"))
    assert reason(blocked, grpc.StatusCode.RESOURCE_EXHAUSTED).reason == Reason.TOO_MANY_ATTEMPTS
    delay = one(blocked, error_details_pb2.RetryInfo).retry_delay
    retry_after = dict(blocked.trailing_metadata())["retry-after"]  # type: ignore[attr-defined]
    assert delay.seconds == int(retry_after) >= 1 and delay.nanos == 0


def test_an_outage_says_when_to_retry(stack: Stack, tenant: Tenant) -> None:
    # With auth gone, the others trust their revocation list for REVOCATION_MAX_STALENESS_SECONDS, then refuse.
    with stack.service_stopped("auth"):
        outage = eventually(
            lambda: (
                get_my_tenant(stack, tenant.owner_token).code() == grpc.StatusCode.UNAVAILABLE
                and get_my_tenant(stack, tenant.owner_token)
            ),
            timeout=20,
        )
    assert reason(outage, grpc.StatusCode.UNAVAILABLE).reason == Reason.REVOCATIONS_NOT_CURRENT
    assert one(outage, error_details_pb2.RetryInfo).retry_delay.seconds == 1


# PreconditionFailure ---------------------------------------------------------


def test_deleting_a_role_someone_holds_names_the_role(stack: Stack, tenant: Tenant) -> None:
    name = f"held_{uuid.uuid4().hex[:6]}"
    stack.roles.CreateRole(
        roles_service_pb2.CreateRoleRequest(name=name, permissions=["app.reports.read"]),
        metadata=bearer(tenant.owner_token),
        timeout=10,
    )
    stack.add_member(tenant, f"{name}@example.test", name)
    delete = roles_service_pb2.DeleteRoleRequest(name=name)
    error = rpc_error(lambda: stack.roles.DeleteRole(delete, metadata=bearer(tenant.owner_token), timeout=10))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    (violation,) = one(error, error_details_pb2.PreconditionFailure).violations
    assert (violation.type, violation.subject) == (Precondition.ROLE_IN_USE, f"roles/{name}")
    assert violation.description == error.details()


def test_the_last_owner_cannot_step_down(stack: Stack) -> None:
    tenant = stack.create_tenant("last-owner")
    owner_id = jwt.decode(tenant.owner_token, options={"verify_signature": False})["sub"]
    demote = members_service_pb2.UpdateMemberRequest(user_id=owner_id, role="admin")
    error = rpc_error(lambda: stack.members.UpdateMember(demote, metadata=bearer(tenant.owner_token), timeout=10))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    (violation,) = one(error, error_details_pb2.PreconditionFailure).violations
    assert (violation.type, violation.subject) == (Precondition.LAST_OWNER, f"users/{owner_id}")


def test_details_carry_no_secrets_or_internals(stack: Stack, tenant: Tenant) -> None:
    wrong = rpc_error(lambda: stack.login(tenant.owner_email, "wrong-password-1", tenant.slug))
    serialized = b"".join(value for key, value in wrong.trailing_metadata() if key.endswith("-bin"))  # type: ignore[attr-defined]
    assert b"wrong-password-1" not in serialized and b"Traceback" not in serialized
    assert tenant.owner_email.encode() not in serialized


def test_the_internal_settings_call_names_its_own_field_and_tenants_the_callers(stack: Stack, tenant: Tenant) -> None:
    internal = auth_service_pb2.SetTenantAccountSettingsRequest(
        tenant_id=tenant.id, registration_enabled=True, default_role="admin"
    )
    error = rpc_error(lambda: stack.auth_internal.SetTenantAccountSettings(internal, metadata=INTERNAL, timeout=10))
    assert field_violation(error)[0] == "default_role"
    update = tenants_service_pb2.UpdateMyTenantRequest(update_mask={"paths": ["settings"]})
    update.tenant.settings.update({"registration": {"enabled": True, "default_role": "admin"}})
    passed_on = rpc_error(lambda: stack.tenants.UpdateMyTenant(update, metadata=bearer(tenant.owner_token), timeout=10))
    assert field_violation(passed_on)[0] == "tenant.settings.registration.default_role"
