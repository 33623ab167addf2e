"""Per-tenant roles and permissions: tokens carry them, every RPC checks them,
nobody grants more than they hold, and a change applies at once."""

from __future__ import annotations

import time
import uuid

import grpc
import jwt
import pytest
from google.protobuf import field_mask_pb2
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import auth_pb2, auth_service_pb2, members_service_pb2, roles_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from kit.permissions import grants
from tests.stack import Stack, Tenant, bearer, eventually, rpc_error


def claims_of(token: str) -> dict:  # type: ignore[type-arg]
    return jwt.decode(token, options={"verify_signature": False})


def create_role(stack: Stack, token: str, name: str, permissions: list[str]) -> None:
    stack.roles.CreateRole(
        roles_service_pb2.CreateRoleRequest(name=name, description=f"{name} role", permissions=permissions),
        metadata=bearer(token),
    )


def member(stack: Stack, tenant: Tenant, role: str) -> tuple[str, str]:
    """A new member with the role: (access token, user id)."""
    tokens = stack.add_member(tenant, f"{role}-{uuid.uuid4().hex[:8]}@example.test", role)
    return tokens.access_token, claims_of(tokens.access_token)["sub"]


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    return stack.create_tenant("roles")


def test_a_custom_role_reaches_the_token_and_guards_rpcs(stack: Stack, tenant: Tenant) -> None:
    create_role(stack, tenant.owner_token, "field_worker", ["app.tickets.write"])
    token, _ = member(stack, tenant, "field_worker")
    claims = claims_of(token)
    assert claims["roles"] == ["field_worker"] and claims["perms"] == ["app.tickets.write"]
    # Tenantry's own RPCs need permissions the role lacks.
    denied = {
        "tenant.read": lambda: stack.tenants.GetMyTenant(
            tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(token)
        ),
        "members.read": lambda: stack.members.ListMembers(
            members_service_pb2.ListMembersRequest(), metadata=bearer(token)
        ),
        "audit.read": lambda: stack.audit.ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(), metadata=bearer(token)
        ),
    }
    for permission, call in denied.items():
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED and permission in error.details()
    # Its own identity is always readable.
    assert stack.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(token)).permissions == [
        "app.tickets.write"
    ]


def test_a_backend_authorizes_with_nothing_but_the_jwks(stack: Stack, tenant: Tenant) -> None:
    create_role(stack, tenant.owner_token, "dispatcher", ["app.tickets.*"])
    token, _ = member(stack, tenant, "dispatcher")
    jwks = stack.auth.GetJwks(auth_service_pb2.GetJwksRequest())
    key = next(k for k in jwks.keys if k.kid == jwt.get_unverified_header(token)["kid"])
    public = jwt.PyJWK({"kty": key.kty, "crv": key.crv, "x": key.x, "kid": key.kid}, algorithm="EdDSA")
    claims = jwt.decode(token, public.key, algorithms=["EdDSA"], audience="tenantry-api")
    assert grants(claims["perms"], "app.tickets.write") and grants(claims["perms"], "app.tickets.assign")
    assert not grants(claims["perms"], "app.billing.read") and not grants(claims["perms"], "tenant.read")


def test_roles_are_listed_with_the_built_ins_and_the_catalogue_is_public_to_members(
    stack: Stack, tenant: Tenant
) -> None:
    create_role(stack, tenant.owner_token, "citizen", ["app.reports.create"])
    roles = stack.roles.ListRoles(roles_service_pb2.ListRolesRequest(), metadata=bearer(tenant.owner_token)).roles
    by_name = {role.name: role for role in roles}
    assert {"owner", "admin", "viewer", "citizen"} <= set(by_name)
    assert by_name["owner"].built_in and not by_name["citizen"].built_in
    catalogue = stack.roles.ListPermissions(
        roles_service_pb2.ListPermissionsRequest(), metadata=bearer(tenant.owner_token)
    )
    names = {permission.name for permission in catalogue.permissions}
    assert {"tenant.read", "tenant.update", "members.read", "members.invite", "members.manage"} <= names
    assert {"roles.manage", "audit.read"} <= names and catalogue.application_pattern.startswith("app.")


def test_built_in_roles_cannot_be_edited_or_deleted(stack: Stack, tenant: Tenant) -> None:
    for name in ("owner", "admin", "viewer"):
        update = roles_service_pb2.UpdateRoleRequest(name=name, permissions=["app.*"])
        error = rpc_error(lambda u=update: stack.roles.UpdateRole(u, metadata=bearer(tenant.owner_token)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        delete = roles_service_pb2.DeleteRoleRequest(name=name)
        error = rpc_error(lambda d=delete: stack.roles.DeleteRole(d, metadata=bearer(tenant.owner_token)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    created = rpc_error(lambda: create_role(stack, tenant.owner_token, "admin", ["tenant.read"]))
    assert created.code() == grpc.StatusCode.ALREADY_EXISTS


def test_escalation_is_refused(stack: Stack, tenant: Tenant) -> None:
    admin_token, _ = member(stack, tenant, "admin")
    # An admin never grants owner, nor changes an owner.
    assert rpc_error(lambda: stack.invite(admin_token, "boss@example.test", "owner")).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    owner_id = claims_of(tenant.owner_token)["sub"]
    demote = members_service_pb2.UpdateMemberRequest(user_id=owner_id, role="viewer")
    assert rpc_error(lambda: stack.members.UpdateMember(demote, metadata=bearer(admin_token))).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    # A manager of roles cannot define or hand out more than they hold.
    create_role(stack, tenant.owner_token, "role_admin", ["roles.manage", "members.invite", "members.read"])
    manager_token, manager_id = member(stack, tenant, "role_admin")
    over = rpc_error(lambda: create_role(stack, manager_token, "sneaky", ["tenant.update"]))
    assert over.code() == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_error(lambda: stack.invite(manager_token, "friend@example.test", "admin")).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    create_role(stack, manager_token, "reader", ["members.read"])  # within what it holds
    widen = roles_service_pb2.UpdateRoleRequest(name="reader", permissions=["members.read", "audit.read"])
    assert rpc_error(lambda: stack.roles.UpdateRole(widen, metadata=bearer(manager_token))).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    # Nor promote itself: it lacks members.manage altogether.
    promote = members_service_pb2.UpdateMemberRequest(user_id=manager_id, role="admin")
    assert rpc_error(lambda: stack.members.UpdateMember(promote, metadata=bearer(manager_token))).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )


@pytest.mark.parametrize(
    ("name", "permissions", "field"),
    [
        ("Bad Name", ["app.x"], "name"),
        ("x", ["app.x"], "name"),
        ("ok_role", ["platform.tenants.manage"], "permissions"),
        ("ok_role", ["app"], "permissions"),
        ("ok_role", ["app.Tickets"], "permissions"),
        ("ok_role", ["app.tickets.*.x"], "permissions"),
        ("ok_role", ["*"], "permissions"),
        ("platform_admin", ["app.x"], "name"),
    ],
)
def test_bad_roles_name_the_field(stack: Stack, tenant: Tenant, name: str, permissions: list[str], field: str) -> None:
    error = rpc_error(lambda: create_role(stack, tenant.owner_token, name, permissions))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith(f"{field}:")


def test_a_role_in_use_cannot_be_deleted(stack: Stack, tenant: Tenant) -> None:
    create_role(stack, tenant.owner_token, "temp_role", ["app.temp.read"])
    _, user_id = member(stack, tenant, "temp_role")
    delete = roles_service_pb2.DeleteRoleRequest(name="temp_role")
    error = rpc_error(lambda: stack.roles.DeleteRole(delete, metadata=bearer(tenant.owner_token)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    stack.members.RemoveMember(
        members_service_pb2.RemoveMemberRequest(user_id=user_id), metadata=bearer(tenant.owner_token)
    )
    stack.invite(tenant.owner_token, "later@example.test", "temp_role")
    error = rpc_error(lambda: stack.roles.DeleteRole(delete, metadata=bearer(tenant.owner_token)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # an open invitation offers it
    invitations = stack.members.ListInvitations(
        members_service_pb2.ListInvitationsRequest(), metadata=bearer(tenant.owner_token)
    ).invitations
    pending = next(i for i in invitations if i.email == "later@example.test")
    stack.members.RevokeInvitation(
        members_service_pb2.RevokeInvitationRequest(invitation_id=pending.id), metadata=bearer(tenant.owner_token)
    )
    stack.roles.DeleteRole(delete, metadata=bearer(tenant.owner_token))
    assert rpc_error(lambda: stack.invite(tenant.owner_token, "x@example.test", "temp_role")).code() == (
        grpc.StatusCode.NOT_FOUND
    )


def every_service(stack: Stack, token: str) -> dict[str, object]:
    return {
        "auth": lambda: stack.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(token)),
        "tenants": lambda: stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(token)),
        "audit": lambda: stack.audit.ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(), metadata=bearer(token)
        ),
    }


CHANGES = {
    "role": lambda user_id: members_service_pb2.UpdateMemberRequest(user_id=user_id, role="viewer"),
    "suspension": lambda user_id: members_service_pb2.UpdateMemberRequest(
        user_id=user_id, status=auth_pb2.MEMBERSHIP_STATUS_SUSPENDED
    ),
    "removal": lambda user_id: members_service_pb2.RemoveMemberRequest(user_id=user_id),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_member_change_refuses_the_old_token_everywhere_within_a_second(
    stack: Stack, tenant: Tenant, change: str
) -> None:
    email = f"changed-{uuid.uuid4().hex[:8]}@example.test"
    tokens = stack.add_member(tenant, email, "admin")
    user_id = claims_of(tokens.access_token)["sub"]
    for call in every_service(stack, tokens.access_token).values():
        call()  # type: ignore[operator]
    request = CHANGES[change](user_id)
    call = stack.members.RemoveMember if change == "removal" else stack.members.UpdateMember
    call(request, metadata=bearer(tenant.owner_token))  # type: ignore[arg-type]
    changed = time.monotonic()
    refresh = rpc_error(lambda: stack.auth.Refresh(auth_service_pb2.RefreshRequest(refresh_token=tokens.refresh_token)))
    assert refresh.code() == grpc.StatusCode.UNAUTHENTICATED
    for name, service_call in every_service(stack, tokens.access_token).items():
        refused = eventually(
            lambda c=service_call: rpc_error(c).code() == grpc.StatusCode.UNAUTHENTICATED,  # type: ignore[arg-type]
            timeout=1.0,
        )
        assert refused, name
    assert time.monotonic() - changed < 1.5
    if change == "role":
        assert claims_of(stack.login(email, "member-password-1", tenant.slug).access_token)["roles"] == ["viewer"]
    else:
        error = rpc_error(lambda: stack.login(email, "member-password-1", tenant.slug))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert ("suspended" if change == "suspension" else "removed") in error.details()


def test_narrowing_a_role_ends_its_holders_sessions(stack: Stack, tenant: Tenant) -> None:
    create_role(stack, tenant.owner_token, "auditor", ["audit.read", "tenant.read"])
    token, _ = member(stack, tenant, "auditor")
    stack.audit.ListAuditEvents(audit_service_pb2.ListAuditEventsRequest(), metadata=bearer(token))
    stack.roles.UpdateRole(
        roles_service_pb2.UpdateRoleRequest(
            name="auditor", permissions=["tenant.read"], update_mask=field_mask_pb2.FieldMask(paths=["permissions"])
        ),
        metadata=bearer(tenant.owner_token),
    )
    refused = eventually(
        lambda: (
            rpc_error(
                lambda: stack.audit.ListAuditEvents(audit_service_pb2.ListAuditEventsRequest(), metadata=bearer(token))
            ).code()
            == grpc.StatusCode.UNAUTHENTICATED
        ),
        timeout=1.0,
    )
    assert refused
