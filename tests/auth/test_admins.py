"""Members of the caller's tenant: listing and adding, with role rules."""

from __future__ import annotations

import uuid

import grpc
import pytest
from tenantry.auth.v1 import auth_pb2, auth_service_pb2

from tests.stack import OWNER_PASSWORD, Stack, bearer, rpc_error


def add(stack: Stack, token: str, email: str, role: int = auth_pb2.ROLE_ADMIN, password: str = "member-password-1"):  # type: ignore[no-untyped-def]
    return stack.auth.AddTenantAdmin(
        auth_service_pb2.AddTenantAdminRequest(email=email, full_name="A Member", role=role, password=password),
        metadata=bearer(token),
    )


def emails(stack: Stack, token: str) -> list[str]:
    reply = stack.auth.ListTenantAdmins(auth_service_pb2.ListTenantAdminsRequest(), metadata=bearer(token))
    return [admin.email for admin in reply.admins]


def test_owner_adds_a_new_admin_who_can_log_in(stack: Stack) -> None:
    tenant = stack.create_tenant()
    email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
    added = add(stack, tenant.owner_token, email)
    assert added.email == email and added.role == auth_pb2.ROLE_ADMIN and added.user_id
    assert emails(stack, tenant.owner_token) == [tenant.owner_email, email]
    tokens = stack.login(email, "member-password-1")
    assert tokens.access_token


def test_an_existing_user_just_gets_the_membership(stack: Stack) -> None:
    first, second = stack.create_tenant(), stack.create_tenant()
    add(stack, second.owner_token, first.owner_email, password="ignored-password")
    # The password stands; the user now needs to pick a tenant.
    assert stack.login(first.owner_email, OWNER_PASSWORD, second.slug).access_token
    assert rpc_error(lambda: stack.login(first.owner_email, "ignored-password", second.slug)).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )


def test_adding_a_member_twice_is_already_exists(stack: Stack) -> None:
    tenant = stack.create_tenant()
    error = rpc_error(lambda: add(stack, tenant.owner_token, tenant.owner_email))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


def test_admins_may_not_add_owners_and_viewers_may_not_add_anyone(stack: Stack) -> None:
    tenant = stack.create_tenant()
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
    viewer_email = f"viewer-{uuid.uuid4().hex[:8]}@example.test"
    add(stack, tenant.owner_token, admin_email)
    add(stack, tenant.owner_token, viewer_email, role=auth_pb2.ROLE_VIEWER)
    admin_token = stack.login(admin_email, "member-password-1").access_token
    viewer_token = stack.login(viewer_email, "member-password-1").access_token
    denied = rpc_error(lambda: add(stack, admin_token, "x@example.test", role=auth_pb2.ROLE_OWNER))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert add(stack, admin_token, f"v-{uuid.uuid4().hex[:8]}@example.test", role=auth_pb2.ROLE_VIEWER).user_id
    assert rpc_error(lambda: add(stack, viewer_token, "y@example.test")).code() == grpc.StatusCode.PERMISSION_DENIED
    assert viewer_email in emails(stack, viewer_token)


@pytest.mark.parametrize(
    ("email", "role", "password", "field"),
    [
        ("not-an-email", auth_pb2.ROLE_ADMIN, "member-password-1", "email"),
        ("new@example.test", auth_pb2.ROLE_UNSPECIFIED, "member-password-1", "role"),
        ("short@example.test", auth_pb2.ROLE_ADMIN, "short", "password"),
        ("long@example.test", auth_pb2.ROLE_ADMIN, "p" * 73, "password"),
    ],
)
def test_bad_member_input_names_the_field(stack: Stack, email: str, role: int, password: str, field: str) -> None:
    tenant = stack.create_tenant()
    error = rpc_error(lambda: add(stack, tenant.owner_token, email, role=role, password=password))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:")
    assert emails(stack, tenant.owner_token) == [tenant.owner_email]


def test_password_of_exactly_72_bytes_is_accepted(stack: Stack) -> None:
    tenant = stack.create_tenant()
    email = f"max-{uuid.uuid4().hex[:8]}@example.test"
    password = "é" * 36  # 72 bytes in UTF-8
    add(stack, tenant.owner_token, email, password=password)
    assert stack.login(email, password).access_token


def test_members_are_paged(stack: Stack) -> None:
    tenant = stack.create_tenant()
    for index in range(4):
        add(stack, tenant.owner_token, f"page{index}-{uuid.uuid4().hex[:6]}@example.test")
    seen: list[str] = []
    token = ""
    while True:
        reply = stack.auth.ListTenantAdmins(
            auth_service_pb2.ListTenantAdminsRequest(page_size=2, page_token=token), metadata=bearer(tenant.owner_token)
        )
        seen += [admin.email for admin in reply.admins]
        token = reply.next_page_token
        if not token:
            break
    assert len(seen) == 5 == len(set(seen))
    bad = rpc_error(
        lambda: stack.auth.ListTenantAdmins(
            auth_service_pb2.ListTenantAdminsRequest(page_token="%%%"), metadata=bearer(tenant.owner_token)
        )
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.details().startswith("page_token:")
