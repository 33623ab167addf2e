"""A token of tenant A can neither read nor change anything of tenant B.

Every ordered pair of four tenants, each attacked in seventeen ways: through
every RPC a tenant token can reach, with forged x-tenant-id metadata, with
B's ids in filters and B's page tokens. Each must be refused or come back
holding only A's own data.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import jwt
import pytest
from google.protobuf import field_mask_pb2
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import auth_pb2, auth_service_pb2, members_service_pb2, roles_service_pb2
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2

from tests.stack import OWNER_PASSWORD, Stack, Tenant, bearer, eventually, rpc_error


@dataclass
class Party:
    tenant: Tenant
    owner_id: str
    name: str
    staff_email: str
    staff_id: str
    role_name: str
    invitation_id: str


@pytest.fixture(scope="module")
def parties(stack: Stack) -> list[Party]:
    made = []
    for index in range(4):
        tenant = stack.create_tenant(f"iso{index}")
        owner_id = jwt.decode(tenant.owner_token, options={"verify_signature": False})["sub"]
        staff = f"staff@{tenant.slug}.test"
        staff_tokens = stack.add_member(tenant, staff, "admin", password=STAFF_PASSWORD)
        staff_id = jwt.decode(staff_tokens.access_token, options={"verify_signature": False})["sub"]
        role_name = f"role_iso{index}"
        stack.roles.CreateRole(
            roles_service_pb2.CreateRoleRequest(name=role_name, permissions=["app.iso.read"]),
            metadata=bearer(tenant.owner_token),
        )
        pending = stack.invite(tenant.owner_token, f"pending@{tenant.slug}.test", role_name)
        made.append(Party(tenant, owner_id, f"Tenant {tenant.slug}", staff, staff_id, role_name, pending.id))
    for party in made:  # each tenant has audit events of its own before the attacks
        eventually(lambda p=party: stack.audit_events(p.tenant.owner_token))
    return made


STAFF_PASSWORD = "staff-password-1"
PENDING = auth_pb2.INVITATION_STATUS_PENDING


def forged(attacker: Party, victim: Party) -> tuple[tuple[str, str], ...]:
    """The attacker's own token, plus metadata claiming the victim's tenant."""
    return (*bearer(attacker.tenant.owner_token), ("x-tenant-id", victim.tenant.id), ("x-user-id", victim.owner_id))


def victim_member_emails(stack: Stack, victim: Party) -> set[str]:
    reply = stack.members.ListMembers(
        members_service_pb2.ListMembersRequest(page_size=100), metadata=bearer(victim.tenant.owner_token)
    )
    return {member.email for member in reply.members}


def victim_invitation_emails(stack: Stack, victim: Party) -> set[str]:
    reply = stack.members.ListInvitations(
        members_service_pb2.ListInvitationsRequest(page_size=100), metadata=bearer(victim.tenant.owner_token)
    )
    return {invitation.email for invitation in reply.invitations if invitation.status == PENDING}


def get_my_tenant(stack: Stack, a: Party, b: Party) -> None:
    mine = stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=forged(a, b))
    assert mine.id == a.tenant.id


def update_my_tenant(stack: Stack, a: Party, b: Party) -> None:
    before = stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(b.tenant.owner_token))
    updated = stack.tenants.UpdateMyTenant(
        tenants_service_pb2.UpdateMyTenantRequest(
            tenant=tenants_pb2.Tenant(id=b.tenant.id, name=f"{a.name} was here"),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        ),
        metadata=forged(a, b),
    )
    assert updated.id == a.tenant.id
    after = stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(b.tenant.owner_token))
    assert after.name == before.name


def list_members(stack: Stack, a: Party, b: Party) -> None:
    reply = stack.members.ListMembers(members_service_pb2.ListMembersRequest(page_size=100), metadata=forged(a, b))
    emails = {member.email for member in reply.members}
    assert b.tenant.owner_email not in emails and b.staff_email not in emails
    assert a.tenant.owner_email in emails


def invite_into_victim(stack: Stack, a: Party, b: Party) -> None:
    email = f"planted-{uuid.uuid4().hex[:8]}@example.test"
    stack.members.CreateInvitation(
        members_service_pb2.CreateInvitationRequest(email=email, role="admin"), metadata=forged(a, b)
    )
    assert email not in victim_invitation_emails(stack, b)
    accepted = stack.accept(stack.invitation_token(email), full_name="Planted", password=STAFF_PASSWORD)
    assert accepted.tenant_id == a.tenant.id
    assert rpc_error(lambda: stack.login(email, STAFF_PASSWORD, b.tenant.slug)).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )


def invite_victim_member(stack: Stack, a: Party, b: Party) -> None:
    """Inviting B's member to A binds nothing, reveals nothing, and B's member logs in as before."""
    invitation = stack.members.CreateInvitation(
        members_service_pb2.CreateInvitationRequest(email=b.staff_email, role="viewer"), metadata=forged(a, b)
    )
    assert b.staff_id not in str(invitation) and "Staff" not in str(invitation)
    assert b.staff_email not in victim_invitation_emails(stack, b)
    tokens = stack.login(b.staff_email, STAFF_PASSWORD)
    assert jwt.decode(tokens.access_token, options={"verify_signature": False})["tid"] == b.tenant.id
    assert b.staff_email in victim_member_emails(stack, b)


def update_victim_member(stack: Stack, a: Party, b: Party) -> None:
    error = rpc_error(
        lambda: stack.members.UpdateMember(
            members_service_pb2.UpdateMemberRequest(user_id=b.staff_id, role="viewer"), metadata=forged(a, b)
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert stack.login(b.staff_email, STAFF_PASSWORD, b.tenant.slug).access_token


def remove_victim_member(stack: Stack, a: Party, b: Party) -> None:
    for user_id in (b.staff_id, b.owner_id):
        error = rpc_error(
            lambda u=user_id: stack.members.RemoveMember(
                members_service_pb2.RemoveMemberRequest(user_id=u), metadata=forged(a, b)
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
    assert b.staff_email in victim_member_emails(stack, b)


def victim_invitations(stack: Stack, a: Party, b: Party) -> None:
    for call in (stack.members.RevokeInvitation, stack.members.ResendInvitation):
        request = (
            members_service_pb2.RevokeInvitationRequest(invitation_id=b.invitation_id)
            if call == stack.members.RevokeInvitation
            else members_service_pb2.ResendInvitationRequest(invitation_id=b.invitation_id)
        )
        assert rpc_error(lambda c=call, r=request: c(r, metadata=forged(a, b))).code() == grpc.StatusCode.NOT_FOUND
    listed = stack.members.ListInvitations(members_service_pb2.ListInvitationsRequest(), metadata=forged(a, b))
    assert b.invitation_id not in {invitation.id for invitation in listed.invitations}
    assert f"pending@{b.tenant.slug}.test" in victim_invitation_emails(stack, b)


def victim_roles(stack: Stack, a: Party, b: Party) -> None:
    listed = stack.roles.ListRoles(roles_service_pb2.ListRolesRequest(), metadata=forged(a, b))
    assert b.role_name not in {role.name for role in listed.roles}
    update = roles_service_pb2.UpdateRoleRequest(name=b.role_name, permissions=["app.*"])
    assert rpc_error(lambda: stack.roles.UpdateRole(update, metadata=forged(a, b))).code() == grpc.StatusCode.NOT_FOUND
    delete = roles_service_pb2.DeleteRoleRequest(name=b.role_name)
    assert rpc_error(lambda: stack.roles.DeleteRole(delete, metadata=forged(a, b))).code() == grpc.StatusCode.NOT_FOUND
    own = stack.roles.ListRoles(roles_service_pb2.ListRolesRequest(), metadata=bearer(b.tenant.owner_token))
    assert next(role for role in own.roles if role.name == b.role_name).permissions == ["app.iso.read"]


def switch_into_victim(stack: Stack, a: Party, b: Party) -> None:
    for call in (
        lambda: stack.auth.SwitchTenant(
            auth_service_pb2.SwitchTenantRequest(tenant_slug=b.tenant.slug), metadata=forged(a, b)
        ),
        lambda: stack.auth.SetDefaultTenant(
            auth_service_pb2.SetDefaultTenantRequest(tenant_slug=b.tenant.slug), metadata=forged(a, b)
        ),
    ):
        assert rpc_error(call).code() == grpc.StatusCode.PERMISSION_DENIED


def list_audit(stack: Stack, a: Party, b: Party) -> None:
    events = stack.audit_events(a.tenant.owner_token)
    assert events and {event.tenant_id for event in events} == {a.tenant.id}
    forged_events = stack.audit.ListAuditEvents(
        audit_service_pb2.ListAuditEventsRequest(page_size=200), metadata=forged(a, b)
    ).events
    assert {event.tenant_id for event in forged_events} == {a.tenant.id}


def audit_by_victim_user(stack: Stack, a: Party, b: Party) -> None:
    assert stack.audit_events(a.tenant.owner_token, user_id=b.owner_id) == []


def audit_with_victims_page_token(stack: Stack, a: Party, b: Party) -> None:
    page = stack.audit.ListAuditEvents(
        audit_service_pb2.ListAuditEventsRequest(page_size=1), metadata=bearer(b.tenant.owner_token)
    )
    assert page.next_page_token
    stolen = stack.audit.ListAuditEvents(
        audit_service_pb2.ListAuditEventsRequest(page_size=200, page_token=page.next_page_token),
        metadata=bearer(a.tenant.owner_token),
    )
    assert all(event.tenant_id == a.tenant.id for event in stolen.events)


def operator_only(call: Callable[[Stack, Party, Party], object]) -> Callable[[Stack, Party, Party], None]:
    def attempt(stack: Stack, a: Party, b: Party) -> None:
        assert rpc_error(lambda: call(stack, a, b)).code() == grpc.StatusCode.PERMISSION_DENIED

    return attempt


suspend_victim = operator_only(
    lambda stack, a, b: stack.tenants.SuspendTenant(
        tenants_service_pb2.SuspendTenantRequest(tenant_id=b.tenant.id), metadata=forged(a, b)
    )
)
reactivate_victim = operator_only(
    lambda stack, a, b: stack.tenants.ReactivateTenant(
        tenants_service_pb2.ReactivateTenantRequest(tenant_id=b.tenant.id), metadata=forged(a, b)
    )
)
list_all_tenants = operator_only(
    lambda stack, a, b: stack.tenants.ListTenants(tenants_service_pb2.ListTenantsRequest(), metadata=forged(a, b))
)


def login_into_victim(stack: Stack, a: Party, b: Party) -> None:
    error = rpc_error(lambda: stack.login(a.tenant.owner_email, OWNER_PASSWORD, b.tenant.slug))
    assert error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


SCENARIOS: dict[str, Callable[[Stack, Party, Party], None]] = {
    "get_my_tenant": get_my_tenant,
    "update_my_tenant": update_my_tenant,
    "list_members": list_members,
    "invite_into_victim": invite_into_victim,
    "invite_victim_member": invite_victim_member,
    "update_victim_member": update_victim_member,
    "remove_victim_member": remove_victim_member,
    "victim_invitations": victim_invitations,
    "victim_roles": victim_roles,
    "switch_into_victim": switch_into_victim,
    "list_audit": list_audit,
    "audit_by_victim_user": audit_by_victim_user,
    "audit_with_victims_page_token": audit_with_victims_page_token,
    "suspend_victim": suspend_victim,
    "reactivate_victim": reactivate_victim,
    "list_all_tenants": list_all_tenants,
    "login_into_victim": login_into_victim,
}
PAIRS = list(itertools.permutations(range(4), 2))


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(("attacker", "victim"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_cross_tenant_access_is_refused_or_empty(
    stack: Stack, parties: list[Party], attacker: int, victim: int, scenario: str
) -> None:
    SCENARIOS[scenario](stack, parties[attacker], parties[victim])
