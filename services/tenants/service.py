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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import grpc
from google.rpc.error_details_pb2 import BadRequest, PreconditionFailure
from sqlalchemy.ext.asyncio import AsyncSession
from tenantry.auth.v1 import auth_pb2, auth_service_pb2, auth_service_pb2_grpc

from kit.clients import with_request_id
from kit.context import Principal, tenant_required
from kit.db import PLATFORM_SCOPE, Database, after_commit
from kit.error_details import Precondition, Reason, details_in
from kit.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from kit.outbox import Outbox
from kit.pagination import one_page
from kit.validation import normalize_email, validate_password, validate_text
from services.tenants import repository
from services.tenants.models import Tenant
from services.tenants.tenant_cache import TenantCache

TIERS = ("free", "basic", "premium")
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
MAX_SETTINGS_BYTES = 64 * 1024
UPDATABLE_FIELDS = ("name", "settings")
# SetTenantAccountSettings' fields, as the tenant's settings name them.
SETTINGS_OF_ACCOUNT_FIELDS = {
    "registration_enabled": "registration.enabled",
    "default_role": "registration.default_role",
    "email_sender_name": "email.sender_name",
    "email_product_name": "email.product_name",
}
AUTH_CALL_TIMEOUT = 5.0

OWNER_STATUSES = {auth_pb2.MEMBERSHIP_STATUS_ACTIVE: "active", auth_pb2.MEMBERSHIP_STATUS_INVITED: "invited"}


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
class CreatedTenant:
    tenant: Tenant
    # "active", "invited" (the email was registered: the owner was sent an
    # invitation) or "" when a retry found the tenant already made.
    owner_status: str


@dataclass(frozen=True)
class TenantPage:
    tenants: list[Tenant]
    next_page_token: str


def validate_settings(field: str, settings: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(settings)) > MAX_SETTINGS_BYTES:
        raise InvalidArgument(field, f"must be at most {MAX_SETTINGS_BYTES} bytes of JSON")
    return settings


@dataclass(frozen=True)
class AccountSettings:
    """What auth acts on in the tenant's settings: settings.registration (may people register
    themselves, and with which role) and settings.email (the names its emails carry)."""

    registration_enabled: bool
    default_role: str
    email_sender_name: str
    email_product_name: str


def account_settings_of(field: str, settings: dict[str, Any]) -> AccountSettings:
    registration = _object(f"{field}.registration", settings.get("registration", {}))
    email = _object(f"{field}.email", settings.get("email", {}))
    enabled = registration.get("enabled", False)
    if not isinstance(enabled, bool):
        raise InvalidArgument(f"{field}.registration.enabled", "must be true or false")
    names = {
        "default_role": (f"{field}.registration.default_role", registration.get("default_role", "")),
        "sender_name": (f"{field}.email.sender_name", email.get("sender_name", "")),
        "product_name": (f"{field}.email.product_name", email.get("product_name", "")),
    }
    for name_field, value in names.values():
        if not isinstance(value, str):
            raise InvalidArgument(name_field, "must be a string")
    return AccountSettings(enabled, names["default_role"][1], names["sender_name"][1], names["product_name"][1])


def _object(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be a JSON object")
    return value


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
        settings=validate_settings("settings", _registration_off(new.settings)),
        owner_email=email,
        owner_full_name=validate_text("owner.full_name", new.owner_full_name, maximum=200),
        owner_password=new.owner_password,
    )


def _registration_off(settings: dict[str, Any]) -> dict[str, Any]:
    # The role self-registered people get is the tenant's own, which does not exist yet.
    if account_settings_of("settings", settings).registration_enabled:
        raise InvalidArgument(
            "settings.registration.enabled", "turn it on with UpdateMyTenant once the tenant has the role to give"
        )
    return settings


class TenantRegistry:
    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        auth: auth_service_pb2_grpc.AuthInternalServiceStub,
        internal_metadata: tuple[tuple[str, str], ...],
        cache: TenantCache,
    ) -> None:
        self._database = database
        self._cache = cache
        self._outbox = outbox
        self._auth = auth
        self._metadata = internal_metadata

    async def create(self, new: NewTenant) -> CreatedTenant:
        """Spans two transactions and a call to auth, so it owns its units of work."""
        new = validate_new_tenant(new)
        now = datetime.now(UTC)
        async with self._database.unit_of_work(scope=PLATFORM_SCOPE) as session:
            tenant = await self._pending_tenant(session, new, now)
            if tenant.provisioned_at is not None:
                return CreatedTenant(tenant, "")
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
        owner_status = OWNER_STATUSES.get(owner.owner_status, "")
        async with self._database.unit_of_work(scope=PLATFORM_SCOPE) as session:
            provisioned = await repository.mark_provisioned(session, tenant.id, datetime.now(UTC))
            if provisioned is None:  # a concurrent retry finished first
                done = await repository.get_provisioned(session, tenant.id)
                assert done is not None
                return CreatedTenant(done, owner_status)
            details = {
                "slug": provisioned.slug,
                "name": provisioned.name,
                "subscription_tier": provisioned.subscription_tier,
                "owner_user_id": owner.user_id,
                "owner_email": new.owner_email,
                "owner_status": owner_status,
            }
            await self._record_in_both_trails(session, "tenant.created", provisioned.id, details)
            return CreatedTenant(provisioned, owner_status)

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

    async def get_mine(self, principal: Principal) -> Tenant:
        """The hot read: from this replica's cache, else one round trip (no unit of work)."""
        tenant_id = _tenant_of(principal)

        async def load() -> Tenant | None:
            async with self._database.single_statement() as connection:
                return await repository.provisioned_tenant_in_scope(connection, tenant_id)

        tenant = await self._cache.get(tenant_id, load)
        if tenant is None:
            raise NotFound("tenant not found")
        return tenant

    async def update_mine(self, principal: Principal, changes: dict[str, Any]) -> Tenant:
        """Owns its unit of work: registration settings go to auth first (an
        idempotent call), so a role auth refuses leaves the settings as they were."""
        tenant_id = _tenant_of(principal)
        if "name" in changes:
            changes["name"] = validate_text("tenant.name", changes["name"], maximum=200)
        if "settings" in changes:
            validate_settings("tenant.settings", changes["settings"])
            account = account_settings_of("tenant.settings", changes["settings"])
            await self._call_auth(
                self._auth.SetTenantAccountSettings,
                auth_service_pb2.SetTenantAccountSettingsRequest(
                    tenant_id=str(tenant_id),
                    registration_enabled=account.registration_enabled,
                    default_role=account.default_role,
                    email_sender_name=account.email_sender_name,
                    email_product_name=account.email_product_name,
                ),
                field_prefix="tenant.settings.",
                renamed=SETTINGS_OF_ACCOUNT_FIELDS,
            )
        async with self._database.unit_of_work() as session:
            return await self._record_update(session, tenant_id, changes)

    async def _record_update(self, session: AsyncSession, tenant_id: UUID, changes: dict[str, Any]) -> Tenant:
        tenant = await repository.update_tenant(session, tenant_id, changes, datetime.now(UTC))
        if tenant is None:
            raise NotFound("tenant not found")
        after_commit(session, lambda: self._cache.evict(tenant_id))
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
            after_commit(session, lambda: self._cache.evict(tenant_id))
            action = "tenant.reactivated" if is_active else "tenant.suspended"
            await self._record_in_both_trails(session, action, tenant_id, {"slug": tenant.slug})
            return tenant

    async def _record_in_both_trails(
        self, session: AsyncSession, action: str, tenant_id: UUID, details: dict[str, Any]
    ) -> None:
        """The operator's act on a tenant: in the tenant's trail, and in the
        platform's own, where operators audit each other (no tenant_id: the
        operator's, which is none)."""
        for trail in (tenant_id, None):
            await self._outbox.record(
                session,
                action=action,
                resource_type="tenant",
                resource_id=tenant_id,
                tenant_id=trail,
                details=details,
            )

    async def _call_auth(
        self, rpc: Any, request: Any, *, field_prefix: str = "", renamed: Mapping[str, str] | None = None
    ) -> Any:
        try:
            # wait_for_ready rides out a reconnect (auth restarting) within the deadline.
            return await rpc(
                request, metadata=with_request_id(self._metadata), timeout=AUTH_CALL_TIMEOUT, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as error:
            raise _translate(error, field_prefix, renamed or {}) from None


def _translate(error: grpc.aio.AioRpcError, field_prefix: str, renamed: Mapping[str, str]) -> DomainError:
    """Auth's refusal of what the caller sent, as this service's own (its field, renamed to the
    caller's, under field_prefix; its details kept); any other failure of auth is an outage here."""
    code, message = error.code(), error.details() or ""
    details = details_in(error.trailing_metadata())  # type: ignore[arg-type]
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        violation = next((v for d in details if isinstance(d, BadRequest) for v in d.field_violations), None)
        if violation is not None:
            return InvalidArgument(field_prefix + renamed.get(violation.field, violation.field), violation.description)
        field, _, problem = message.partition(": ")
        return InvalidArgument(field_prefix + renamed.get(field, field), problem)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return AlreadyExists(message or "conflict")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        failed = next((v for d in details if isinstance(d, PreconditionFailure) for v in d.violations), None)
        kind = Precondition(failed.type) if failed is not None and failed.type in Precondition else None
        return FailedPrecondition(
            message or "conflict",
            violation=kind or Precondition.ACCOUNT_CHANGED,
            subject=failed.subject if failed is not None else "owner",
        )
    return Unavailable(
        "the auth service is unavailable; retry the request",
        reason=Reason.AUTH_SERVICE_UNAVAILABLE,
        retry_after_seconds=1,
    )


def _tenant_of(principal: Principal) -> UUID:
    if principal.tenant_id is None:
        raise tenant_required()
    return principal.tenant_id
