"""The tenant registry: create, read, update by field mask, list, suspend."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2

from tests.stack import OWNER_PASSWORD, Stack, bearer, rpc_error


def create_request(slug: str | None = None, **overrides):  # type: ignore[no-untyped-def]
    owner = overrides.pop(
        "owner",
        tenants_service_pb2.TenantOwner(
            email=f"o-{uuid.uuid4().hex[:8]}@example.test", full_name="O", password=OWNER_PASSWORD
        ),
    )
    return tenants_service_pb2.CreateTenantRequest(
        name=overrides.pop("name", "Some Tenant"),
        slug=slug if slug is not None else f"s-{uuid.uuid4().hex[:10]}",
        owner=owner,
        **overrides,
    )


def test_created_tenant_has_every_field(stack: Stack) -> None:
    settings = struct_pb2.Struct()
    settings.update({"theme": "dark", "limits": {"seats": 5}})
    request = create_request(subscription_tier=tenants_pb2.SUBSCRIPTION_TIER_PREMIUM, settings=settings)
    tenant = stack.tenants.CreateTenant(request, metadata=bearer(stack.operator_token()))
    uuid.UUID(tenant.id)
    assert (tenant.name, tenant.slug, tenant.is_active) == ("Some Tenant", request.slug, True)
    assert tenant.subscription_tier == tenants_pb2.SUBSCRIPTION_TIER_PREMIUM
    assert tenant.settings["limits"]["seats"] == 5
    assert tenant.created_at.seconds > 0 and tenant.updated_at.seconds > 0


def test_tier_defaults_to_free(stack: Stack) -> None:
    tenant = stack.tenants.CreateTenant(create_request(), metadata=bearer(stack.operator_token()))
    assert tenant.subscription_tier == tenants_pb2.SUBSCRIPTION_TIER_FREE


def test_only_operators_create_tenants(stack: Stack) -> None:
    tenant = stack.create_tenant()
    error = rpc_error(lambda: stack.tenants.CreateTenant(create_request(), metadata=bearer(tenant.owner_token)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def _owner(**fields):  # type: ignore[no-untyped-def]
    values = {"email": f"o-{uuid.uuid4().hex[:8]}@example.test", "full_name": "O", "password": OWNER_PASSWORD}
    values.update(fields)
    return tenants_service_pb2.TenantOwner(**values)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "ab"}, "slug"),
        ({"slug": "-leading"}, "slug"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"subscription_tier": 42}, "subscription_tier"),
        ({"owner": _owner(email="nope")}, "owner.email"),
        ({"owner": _owner(password="short")}, "owner.password"),
        ({"owner": _owner(password="x" * 73)}, "owner.password"),
        ({"owner": _owner(full_name="")}, "owner.full_name"),
    ],
)
def test_bad_tenant_input_names_the_field_and_writes_nothing(stack: Stack, overrides, field: str) -> None:  # type: ignore[no-untyped-def]
    slug = overrides.pop("slug", f"s-{uuid.uuid4().hex[:10]}")
    error = rpc_error(
        lambda: stack.tenants.CreateTenant(create_request(slug, **overrides), metadata=bearer(stack.operator_token()))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:"), error.details()
    assert stack.sql("SELECT count(*) FROM tenants.tenants WHERE slug = %s", (slug,))[0][0] == 0


def test_missing_owner_is_invalid(stack: Stack) -> None:
    request = tenants_service_pb2.CreateTenantRequest(name="No Owner", slug=f"s-{uuid.uuid4().hex[:10]}")
    error = rpc_error(lambda: stack.tenants.CreateTenant(request, metadata=bearer(stack.operator_token())))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("owner:")


def test_a_taken_slug_is_already_exists(stack: Stack) -> None:
    tenant = stack.create_tenant()
    error = rpc_error(
        lambda: stack.tenants.CreateTenant(create_request(tenant.slug), metadata=bearer(stack.operator_token()))
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


def test_get_my_tenant_is_the_tokens_tenant(stack: Stack) -> None:
    tenant = stack.create_tenant()
    mine = stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(tenant.owner_token))
    assert (mine.id, mine.slug) == (tenant.id, tenant.slug)


def update(stack: Stack, token: str, paths: list[str], **fields):  # type: ignore[no-untyped-def]
    return stack.tenants.UpdateMyTenant(
        tenants_service_pb2.UpdateMyTenantRequest(
            tenant=tenants_pb2.Tenant(**fields), update_mask=field_mask_pb2.FieldMask(paths=paths)
        ),
        metadata=bearer(token),
    )


def test_update_changes_only_the_masked_fields(stack: Stack) -> None:
    tenant = stack.create_tenant()
    settings = struct_pb2.Struct()
    settings.update({"locale": "en-ZA"})
    renamed = update(stack, tenant.owner_token, ["name"], name="Renamed", settings=settings)
    assert renamed.name == "Renamed" and "locale" not in renamed.settings
    configured = update(stack, tenant.owner_token, ["settings"], name="Ignored", settings=settings)
    assert configured.name == "Renamed" and configured.settings["locale"] == "en-ZA"
    assert configured.updated_at.ToDatetime() >= configured.created_at.ToDatetime()


@pytest.mark.parametrize("paths", [[], ["slug"], ["is_active"], ["subscription_tier"], ["nonsense"]])
def test_update_refuses_missing_or_read_only_paths(stack: Stack, paths: list[str]) -> None:
    tenant = stack.create_tenant()
    error = rpc_error(lambda: update(stack, tenant.owner_token, paths, slug="hijack", is_active=False))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("update_mask:")


def test_update_refuses_an_empty_name(stack: Stack) -> None:
    tenant = stack.create_tenant()
    error = rpc_error(lambda: update(stack, tenant.owner_token, ["name"], name="  "))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("tenant.name:")


def test_operators_list_every_tenant_in_pages(stack: Stack) -> None:
    created = {stack.create_tenant().id for _ in range(3)}
    token = stack.operator_token()
    seen: list[str] = []
    page = ""
    while True:
        reply = stack.tenants.ListTenants(
            tenants_service_pb2.ListTenantsRequest(page_size=2, page_token=page), metadata=bearer(token)
        )
        seen += [tenant.id for tenant in reply.tenants]
        page = reply.next_page_token
        if not page:
            break
    assert created <= set(seen) and len(seen) == len(set(seen))


def test_suspension_revokes_sessions_and_refuses_logins_until_reactivated(stack: Stack) -> None:
    tenant = stack.create_tenant()
    operator = bearer(stack.operator_token())
    suspended = stack.tenants.SuspendTenant(
        tenants_service_pb2.SuspendTenantRequest(tenant_id=tenant.id), metadata=operator
    )
    assert not suspended.is_active
    login = rpc_error(lambda: stack.login(tenant.owner_email, OWNER_PASSWORD))
    assert login.code() == grpc.StatusCode.PERMISSION_DENIED and "suspended" in login.details()
    from tests.stack import eventually

    eventually(
        lambda: stack.token_refused_by_tenants(tenant.owner_token),
        timeout=1.0,
    )
    # Idempotent.
    stack.tenants.SuspendTenant(tenants_service_pb2.SuspendTenantRequest(tenant_id=tenant.id), metadata=operator)
    back = stack.tenants.ReactivateTenant(
        tenants_service_pb2.ReactivateTenantRequest(tenant_id=tenant.id), metadata=operator
    )
    assert back.is_active
    assert stack.login(tenant.owner_email, OWNER_PASSWORD).access_token


def test_suspending_an_unknown_tenant_is_not_found(stack: Stack) -> None:
    error = rpc_error(
        lambda: stack.tenants.SuspendTenant(
            tenants_service_pb2.SuspendTenantRequest(tenant_id=str(uuid.uuid4())),
            metadata=bearer(stack.operator_token()),
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    malformed = rpc_error(
        lambda: stack.tenants.SuspendTenant(
            tenants_service_pb2.SuspendTenantRequest(tenant_id="not-a-uuid"), metadata=bearer(stack.operator_token())
        )
    )
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT and malformed.details().startswith("tenant_id:")
