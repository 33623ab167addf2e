"""A token of tenant A can neither read nor change anything of tenant B.

Every ordered pair of four tenants, each attacked in twelve ways: through
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
from tenantry.auth.v1 import auth_pb2, auth_service_pb2
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2

from tests.stack import OWNER_PASSWORD, Stack, Tenant, bearer, eventually, rpc_error


@dataclass
class Party:
    tenant: Tenant
    owner_id: str
    name: str
    staff_email: str


@pytest.fixture(scope="module")
def parties(stack: Stack) -> list[Party]:
    made = []
    for index in range(4):
        tenant = stack.create_tenant(f"iso{index}")
        owner_id = jwt.decode(tenant.owner_token, options={"verify_signature": False})["sub"]
        staff = f"staff@{tenant.slug}.test"
        stack.auth.AddTenantAdmin(
            auth_service_pb2.AddTenantAdminRequest(
                email=staff, full_name="Staff", role=auth_pb2.ROLE_ADMIN, password="staff-password"
            ),
            metadata=bearer(tenant.owner_token),
        )
        made.append(Party(tenant, owner_id, f"Tenant {tenant.slug}", staff))
    for party in made:  # each tenant has audit events of its own before the attacks
        eventually(lambda p=party: stack.audit_events(p.tenant.owner_token))
    return made


def forged(attacker: Party, victim: Party) -> tuple[tuple[str, str], ...]:
    """The attacker's own token, plus metadata claiming the victim's tenant."""
    return (*bearer(attacker.tenant.owner_token), ("x-tenant-id", victim.tenant.id), ("x-user-id", victim.owner_id))


def victim_admin_emails(stack: Stack, victim: Party) -> set[str]:
    reply = stack.auth.ListTenantAdmins(
        auth_service_pb2.ListTenantAdminsRequest(page_size=100), metadata=bearer(victim.tenant.owner_token)
    )
    return {admin.email for admin in reply.admins}


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


def list_admins(stack: Stack, a: Party, b: Party) -> None:
    reply = stack.auth.ListTenantAdmins(auth_service_pb2.ListTenantAdminsRequest(page_size=100), metadata=forged(a, b))
    assert b.tenant.owner_email not in {admin.email for admin in reply.admins}
    assert a.tenant.owner_email in {admin.email for admin in reply.admins}


def add_admin(stack: Stack, a: Party, b: Party) -> None:
    email = f"planted-{uuid.uuid4().hex[:8]}@example.test"
    stack.auth.AddTenantAdmin(
        auth_service_pb2.AddTenantAdminRequest(
            email=email, full_name="Planted", role=auth_pb2.ROLE_ADMIN, password="planted-password"
        ),
        metadata=forged(a, b),
    )
    assert email not in victim_admin_emails(stack, b)
    assert rpc_error(lambda: stack.login(email, "planted-password", b.tenant.slug)).code() == (
        grpc.StatusCode.PERMISSION_DENIED
    )


def add_victim_member_as_admin(stack: Stack, a: Party, b: Party) -> None:
    """Adding B's member to A gives A nothing of B, and the member's password stands."""
    try:
        stack.auth.AddTenantAdmin(
            auth_service_pb2.AddTenantAdminRequest(
                email=b.staff_email, full_name="x", role=auth_pb2.ROLE_VIEWER, password="takeover-password"
            ),
            metadata=forged(a, b),
        )
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS  # an earlier scenario added it
    assert rpc_error(lambda: stack.login(b.staff_email, "takeover-password", a.tenant.slug)).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert b.staff_email in victim_admin_emails(stack, b)


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
    "list_admins": list_admins,
    "add_admin": add_admin,
    "add_victim_member_as_admin": add_victim_member_as_admin,
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
