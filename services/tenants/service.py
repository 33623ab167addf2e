"""Use cases of the tenant registry.

Creating a tenant spans two services: the tenant here, its owner in auth.
It runs as three steps, each safe to repeat: (1) insert the tenant, not yet
provisioned (hidden from every read); (2) ask auth, idempotently, to make the
owner; (3) mark the tenant provisioned, with its audit event. A failure after
(1) leaves a hidden, ownerless record that the client's retry (same slug and
owner email) picks up and completes; nothing is ever duplicated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import grpc
from sqlalchemy.ext.asyncio import AsyncSession
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from kit.clients import with_request_id
from kit.context import Principal
from kit.db import PLATFORM_SCOPE, Database
from kit.errors import AlreadyExists, DomainError, InvalidArgument, NotFound, PermissionDenied, Unavailable
from kit.outbox import Outbox
from kit.pagination import one_page
from kit.validation import normalize_email, validate_password, validate_text
from services.tenants import repository
from services.tenants.models import Tenant

TIERS = ("free", "basic", "premium")
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
MAX_SETTINGS_BYTES = 64 * 1024
UPDATABLE_FIELDS = ("name", "settings")
AUTH_CALL_TIMEOUT = 5.0

_PASSED_THROUGH = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
}


@dataclass(frozen=True)
class NewTenant:
    name: str
    slug: str
    subscription_tier: str
    settings: dict[str, Any]
    owner_email: str
    owner_full_name: str
    owner_password: str


@dataclass(frozen=True)
class TenantPage:
    tenants: list[Tenant]
    next_page_token: str


def validate_settings(field: str, settings: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(settings)) > MAX_SETTINGS_BYTES:
        raise InvalidArgument(field, f"must be at most {MAX_SETTINGS_BYTES} bytes of JSON")
    return settings


def validate_new_tenant(new: NewTenant) -> NewTenant:
    if not SLUG.fullmatch(new.slug):
        raise InvalidArgument(
            "slug", "must be 3 to 63 lowercase letters, digits or inner hyphens, starting and ending alphanumeric"
        )
    if new.subscription_tier not in TIERS:
        raise InvalidArgument("subscription_tier", "must be free, basic or premium")
    email = normalize_email("owner.email", new.owner_email)
    # Checked here too, so that a bad owner fails before anything is written.
    validate_password("owner.password", new.owner_password)
    return NewTenant(
        name=validate_text("name", new.name, maximum=200),
        slug=new.slug,
        subscription_tier=new.subscription_tier,
        settings=validate_settings("settings", new.settings),
        owner_email=email,
        owner_full_name=validate_text("owner.full_name", new.owner_full_name, maximum=200),
        owner_password=new.owner_password,
    )


class TenantRegistry:
    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        auth: auth_service_pb2_grpc.AuthInternalServiceStub,
        internal_metadata: tuple[tuple[str, str], ...],
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._auth = auth
        self._metadata = internal_metadata

    async def create(self, new: NewTenant) -> Tenant:
        """Spans two transactions and a call to auth, so it owns its units of work."""
        new = validate_new_tenant(new)
        now = datetime.now(UTC)
        async with self._database.unit_of_work(scope=PLATFORM_SCOPE) as session:
            tenant = await self._pending_tenant(session, new, now)
            if tenant.provisioned_at is not None:
                return tenant
        owner = await self._call_auth(
            self._auth.ProvisionTenantOwner,
            auth_service_pb2.ProvisionTenantOwnerRequest(
                tenant_id=str(tenant.id),
                tenant_slug=tenant.slug,
                email=new.owner_email,
                full_name=new.owner_full_name,
                password=new.owner_password,
            ),
            field_prefix="owner.",
        )
        async with self._database.unit_of_work(scope=PLATFORM_SCOPE) as session:
            provisioned = await repository.mark_provisioned(session, tenant.id, datetime.now(UTC))
            if provisioned is None:  # a concurrent retry finished first
                done = await repository.get_provisioned(session, tenant.id)
                assert done is not None
                return done
            await self._outbox.record(
                session,
                action="tenant.created",
                resource_type="tenant",
                resource_id=provisioned.id,
                tenant_id=provisioned.id,
                details={
                    "slug": provisioned.slug,
                    "name": provisioned.name,
                    "subscription_tier": provisioned.subscription_tier,
                    "owner_user_id": owner.user_id,
                    "owner_email": new.owner_email,
                },
            )
            return provisioned

    async def _pending_tenant(self, session: AsyncSession, new: NewTenant, now: datetime) -> Tenant:
        values = {
            "name": new.name,
            "slug": new.slug,
            "subscription_tier": new.subscription_tier,
            "settings": new.settings,
            "owner_email": new.owner_email,
        }
        inserted = await repository.insert_pending(session, values, now)
        if inserted is not None:
            return inserted
        existing = await repository.find_by_slug(session, new.slug)
        if existing is None or existing.owner_email != new.owner_email:
            raise AlreadyExists("slug: already taken")
        if existing.provisioned_at is not None and (
            existing.name != new.name or existing.subscription_tier != new.subscription_tier
        ):
            raise AlreadyExists("slug: already taken")
        # The same request again: finish (or return) what the first began.
        return existing

    async def get_mine(self, session: AsyncSession, principal: Principal) -> Tenant:
        tenant = await repository.get_provisioned(session, _tenant_of(principal))
        if tenant is None:
            raise NotFound("tenant not found")
        return tenant

    async def update_mine(self, session: AsyncSession, principal: Principal, changes: dict[str, Any]) -> Tenant:
        tenant_id = _tenant_of(principal)
        if "name" in changes:
            changes["name"] = validate_text("tenant.name", changes["name"], maximum=200)
        if "settings" in changes:
            validate_settings("tenant.settings", changes["settings"])
        tenant = await repository.update_tenant(session, tenant_id, changes, datetime.now(UTC))
        if tenant is None:
            raise NotFound("tenant not found")
        await self._outbox.record(
            session,
            action="tenant.updated",
            resource_type="tenant",
            resource_id=tenant_id,
            details={"fields": sorted(changes), **({"name": tenant.name} if "name" in changes else {})},
        )
        return tenant

    async def list(self, session: AsyncSession, *, after: tuple[datetime, UUID] | None, page_size: int) -> TenantPage:
        rows = await repository.list_provisioned(session, after=after, limit=page_size + 1)
        return TenantPage(*one_page(rows, page_size, lambda row: (row.created_at, row.id)))

    async def set_active(self, tenant_id: UUID, is_active: bool) -> Tenant:
        """Auth first (it refuses logins and revokes sessions), then the registry;
        both steps are idempotent, so a failed call is simply retried."""
        async with self._database.unit_of_work(scope=PLATFORM_SCOPE) as session:
            if await repository.get_provisioned(session, tenant_id) is None:
                raise NotFound("tenant_id: no such tenant")
        await self._call_auth(
            self._auth.SetTenantStatus,
            auth_service_pb2.SetTenantStatusRequest(tenant_id=str(tenant_id), is_active=is_active),
        )
        async with self._database.unit_of_work(scope=PLATFORM_SCOPE) as session:
            tenant = await repository.update_tenant(session, tenant_id, {"is_active": is_active}, datetime.now(UTC))
            assert tenant is not None
            await self._outbox.record(
                session,
                action="tenant.reactivated" if is_active else "tenant.suspended",
                resource_type="tenant",
                resource_id=tenant_id,
                tenant_id=tenant_id,
            )
            return tenant

    async def _call_auth(self, rpc: Any, request: Any, *, field_prefix: str = "") -> Any:
        try:
            # wait_for_ready rides out a reconnect (auth restarting) within the deadline.
            return await rpc(
                request, metadata=with_request_id(self._metadata), timeout=AUTH_CALL_TIMEOUT, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error, field_prefix) from None


def _translate(error: grpc.aio.AioRpcError, field_prefix: str) -> DomainError:
    passed = _PASSED_THROUGH.get(error.code())
    if passed is InvalidArgument:
        field, _, problem = (error.details() or "").partition(": ")
        return InvalidArgument(field_prefix + field, problem)
    if passed is not None:
        return passed(error.details() or "conflict")
    return Unavailable("the auth service is unavailable; retry the request")


def _tenant_of(principal: Principal) -> UUID:
    if principal.tenant_id is None:
        raise PermissionDenied("the token names no tenant")
    return principal.tenant_id
