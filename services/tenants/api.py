"""The tenant registry servicer: proto <-> domain, one thin method per RPC."""

from __future__ import annotations

from typing import Any

import grpc
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2, tenants_service_pb2_grpc

from kit.context import require_principal
from kit.convert import BuiltFrom, from_struct, parse_uuid, struct, timestamp
from kit.db import Database
from kit.errors import InvalidArgument
from kit.pagination import decode_cursor, page_size
from services.tenants.models import Tenant
from services.tenants.service import UPDATABLE_FIELDS, NewTenant, TenantRegistry
from services.tenants.tenant_cache import MAX_TENANTS

TIER_NAMES = {
    tenants_pb2.SUBSCRIPTION_TIER_FREE: "free",
    tenants_pb2.SUBSCRIPTION_TIER_BASIC: "basic",
    tenants_pb2.SUBSCRIPTION_TIER_PREMIUM: "premium",
}
TIER_VALUES = {name: value for value, name in TIER_NAMES.items()}
OWNER_STATUSES = {"active": tenants_pb2.OWNER_STATUS_ACTIVE, "invited": tenants_pb2.OWNER_STATUS_INVITED}


def tenant_message(tenant: Tenant) -> tenants_pb2.Tenant:
    return tenants_pb2.Tenant(
        id=str(tenant.id),
        name=tenant.name,
        slug=tenant.slug,
        subscription_tier=TIER_VALUES[tenant.subscription_tier],  # type: ignore[arg-type]
        settings=struct(tenant.settings),
        is_active=tenant.is_active,
        created_at=timestamp(tenant.created_at),
        updated_at=timestamp(tenant.updated_at),
    )


def tenant_changes(request: tenants_service_pb2.UpdateMyTenantRequest) -> dict[str, Any]:
    paths = list(request.update_mask.paths)
    if not paths:
        raise InvalidArgument("update_mask", f"must name at least one of: {', '.join(UPDATABLE_FIELDS)}")
    changes: dict[str, Any] = {}
    for path in paths:
        if path == "name":
            changes["name"] = request.tenant.name
        elif path == "settings":
            changes["settings"] = from_struct(request.tenant.settings)
        else:
            raise InvalidArgument("update_mask", f"'{path}' cannot be updated (allowed: {', '.join(UPDATABLE_FIELDS)})")
    return changes


class TenantApi(tenants_service_pb2_grpc.TenantServiceServicer):
    def __init__(self, database: Database, registry: TenantRegistry) -> None:
        self._database = database
        self._registry = registry
        # GetMyTenant's answers, by tenant id: see GetMyTenant.
        self._mine = BuiltFrom(tenant_message, limit=MAX_TENANTS)

    async def CreateTenant(
        self, request: tenants_service_pb2.CreateTenantRequest, context: grpc.aio.ServicerContext
    ) -> tenants_pb2.Tenant:
        tier = request.subscription_tier or tenants_pb2.SUBSCRIPTION_TIER_FREE
        if tier not in TIER_NAMES:
            raise InvalidArgument("subscription_tier", "is not a known tier")
        if not request.HasField("owner"):
            raise InvalidArgument("owner", "is required")
        created = await self._registry.create(
            NewTenant(
                name=request.name,
                slug=request.slug,
                subscription_tier=TIER_NAMES[tier],
                settings=from_struct(request.settings),
                owner_email=request.owner.email,
                owner_full_name=request.owner.full_name,
                owner_password=request.owner.password,
            )
        )
        message = tenant_message(created.tenant)
        if created.owner_status:  # a retry that found the tenant made says nothing of its owner
            message.owner_status = OWNER_STATUSES[created.owner_status]
        return message

    async def GetMyTenant(
        self, request: tenants_service_pb2.GetMyTenantRequest, context: grpc.aio.ServicerContext
    ) -> tenants_pb2.Tenant:
        tenant = await self._registry.get_mine(require_principal())
        # The replica's cache hands back the same row until the tenant changes (then a
        # new one): the message built from that row is the same message, and building
        # it (settings to a Struct, two Timestamps) cost more than the rest of the handler.
        return self._mine.message(tenant.id, tenant)

    async def UpdateMyTenant(
        self, request: tenants_service_pb2.UpdateMyTenantRequest, context: grpc.aio.ServicerContext
    ) -> tenants_pb2.Tenant:
        tenant = await self._registry.update_mine(require_principal(), tenant_changes(request))
        return tenant_message(tenant)

    async def ListTenants(
        self, request: tenants_service_pb2.ListTenantsRequest, context: grpc.aio.ServicerContext
    ) -> tenants_service_pb2.ListTenantsResponse:
        size = page_size(request.page_size)
        after = decode_cursor(request.page_token)
        async with self._database.unit_of_work() as session:
            page = await self._registry.list(session, after=after, page_size=size)
        return tenants_service_pb2.ListTenantsResponse(
            tenants=[tenant_message(tenant) for tenant in page.tenants], next_page_token=page.next_page_token
        )

    async def SuspendTenant(
        self, request: tenants_service_pb2.SuspendTenantRequest, context: grpc.aio.ServicerContext
    ) -> tenants_pb2.Tenant:
        tenant_id = parse_uuid("tenant_id", request.tenant_id)
        assert tenant_id is not None
        return tenant_message(await self._registry.set_active(tenant_id, False))

    async def ReactivateTenant(
        self, request: tenants_service_pb2.ReactivateTenantRequest, context: grpc.aio.ServicerContext
    ) -> tenants_pb2.Tenant:
        tenant_id = parse_uuid("tenant_id", request.tenant_id)
        assert tenant_id is not None
        return tenant_message(await self._registry.set_active(tenant_id, True))
