"""Creating a tenant spans two services; retries after failure complete it, never duplicate it."""

from __future__ import annotations

import uuid

import grpc
from tenantry.auth.v1 import auth_pb2, auth_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from tests.stack import INTERNAL, OWNER_PASSWORD, Stack, bearer, rpc_error


def request(slug: str, email: str) -> tenants_service_pb2.CreateTenantRequest:
    return tenants_service_pb2.CreateTenantRequest(
        name="Retry Ltd",
        slug=slug,
        owner=tenants_service_pb2.TenantOwner(email=email, full_name="Retry Owner", password=OWNER_PASSWORD),
    )


def test_create_retried_after_auth_was_down_completes_once(stack: Stack) -> None:
    slug, email = f"retry-{uuid.uuid4().hex[:8]}", f"retry-{uuid.uuid4().hex[:8]}@example.test"
    operator = bearer(stack.operator_token())
    # Tenants caches auth's keys on first use; auth is about to go away.
    stack.tenants.ListTenants(tenants_service_pb2.ListTenantsRequest(), metadata=operator)
    with stack.service_stopped("auth"):
        failed = rpc_error(lambda: stack.tenants.CreateTenant(request(slug, email), metadata=operator, timeout=30))
        assert failed.code() == grpc.StatusCode.UNAVAILABLE
    # Nothing usable exists: the half-made tenant is hidden from every read.
    # (Read once auth is back: cut off from auth for long, tenants refuses tokens.)
    listed = stack.tenants.ListTenants(tenants_service_pb2.ListTenantsRequest(page_size=100), metadata=operator)
    assert slug not in {tenant.slug for tenant in listed.tenants}
    created = stack.tenants.CreateTenant(request(slug, email), metadata=operator, timeout=30)
    again = stack.tenants.CreateTenant(request(slug, email), metadata=operator, timeout=30)
    assert again.id == created.id and created.is_active
    assert stack.sql("SELECT count(*) FROM tenants.tenants WHERE slug = %s", (slug,))[0][0] == 1
    owners = stack.sql("SELECT count(*) FROM auth.memberships WHERE tenant_id = %s AND role = 'owner'", (created.id,))
    assert owners[0][0] == 1
    assert stack.login(email, OWNER_PASSWORD).access_token


def test_the_same_slug_for_another_owner_is_refused(stack: Stack) -> None:
    tenant = stack.create_tenant()
    error = rpc_error(
        lambda: stack.tenants.CreateTenant(
            request(tenant.slug, "someone-else@example.test"), metadata=bearer(stack.operator_token())
        )
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


def test_owner_provisioning_is_idempotent(stack: Stack) -> None:
    tenant_id, slug = str(uuid.uuid4()), f"prov-{uuid.uuid4().hex[:8]}"
    call = auth_service_pb2.ProvisionTenantOwnerRequest(
        tenant_id=tenant_id, tenant_slug=slug, email=f"{slug}@example.test", full_name="P", password=OWNER_PASSWORD
    )
    first = stack.auth_internal.ProvisionTenantOwner(call, metadata=INTERNAL)
    second = stack.auth_internal.ProvisionTenantOwner(call, metadata=INTERNAL)
    assert first.user_id == second.user_id and first.user_created and not second.user_created
    assert first.owner_status == second.owner_status == auth_pb2.MEMBERSHIP_STATUS_ACTIVE
    assert stack.sql("SELECT count(*) FROM auth.memberships WHERE tenant_id = %s", (tenant_id,))[0][0] == 1
    clash = auth_service_pb2.ProvisionTenantOwnerRequest(
        tenant_id=str(uuid.uuid4()), tenant_slug=slug, email="x@example.test", full_name="X", password=OWNER_PASSWORD
    )
    error = rpc_error(lambda: stack.auth_internal.ProvisionTenantOwner(clash, metadata=INTERNAL))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
