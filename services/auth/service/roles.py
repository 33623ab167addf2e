"""Roles and permissions: the catalogue, the built-in roles, the tenant's own
roles, and the rule that nobody grants more than they hold."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.error_details import Precondition, Reason
from kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from kit.outbox import Outbox
from kit.permissions import missing
from kit.validation import validate_text
from services.auth.repository import invitations, memberships
from services.auth.repository import roles as role_rows
from services.auth.service.tenancy import tenant_of

# Tenantry's own permissions, which its contracts' access rules name.
CATALOGUE: dict[str, str] = {
    "tenant.read": "Read the tenant's profile and settings.",
    "tenant.update": "Change the tenant's name and settings.",
    "members.read": "List members, invitations and roles.",
    "members.invite": "Invite people, and resend or revoke invitations.",
    "members.manage": "Change members' roles and status, and remove members.",
    "roles.manage": "Define, change and delete the tenant's roles.",
    "audit.read": "Read and verify the tenant's audit trail.",
    "audit.write": "Append the application's own events to the tenant's audit trail.",
    "emails.read": "Read the tenant's email delivery log (recipients, status, errors; never bodies).",
    "api_keys.read": "List the tenant's API keys (never their secrets).",
    "api_keys.manage": "Create and revoke the tenant's API keys.",
    "service_accounts.manage": "Create and delete the tenant's service accounts and their credentials.",
}
APPLICATION_PREFIX = "app."
APPLICATION_PATTERN = "app.<name>[.<name>...] with lowercase letters, digits and underscores; app.<name>.* for a set"
_APPLICATION_PERMISSION = re.compile(r"app(\.[a-z][a-z0-9_]{0,39}){1,5}(\.\*)?|app\.\*")
_ROLE_NAME = re.compile(r"[a-z][a-z0-9_]{1,39}")

OWNER, ADMIN, VIEWER = "owner", "admin", "viewer"
EVERYTHING = (*CATALOGUE, "app.*")
BUILT_IN: dict[str, tuple[str, tuple[str, ...]]] = {
    OWNER: ("Full control of the tenant, including its owners.", EVERYTHING),
    ADMIN: ("Manages the tenant, its members and roles, except owners.", EVERYTHING),
    VIEWER: ("Reads the tenant and its members.", ("tenant.read", "members.read")),
}
# The platform operator acts above tenants and is never a tenant role.
PLATFORM_OPERATOR_PERMISSIONS = (
    "platform.tenants.read",
    "platform.tenants.manage",
    "audit.read",
    "platform.emails.read",
    "service_accounts.manage",
    "platform.settings.manage",
)
MAX_PERMISSIONS = 100
# The operator's role is platform_admin; no tenant role may look like it.
RESERVED_ROLE_PREFIX = "platform"
# Aliases from the contracts' former Role enum, so old clients keep working.
_ENUM_ALIASES = {"ROLE_OWNER": OWNER, "ROLE_ADMIN": ADMIN, "ROLE_VIEWER": VIEWER}


# Ends some members' sessions in one tenant (session, tenant, users, reason) and says how many.
MemberSessionRevoker = Callable[[AsyncSession, UUID, list[UUID], str], Awaitable[int]]


@dataclass(frozen=True)
class RoleView:
    name: str
    description: str
    permissions: tuple[str, ...]
    built_in: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None


def role_name(field: str, value: str) -> str:
    value = _ENUM_ALIASES.get(value, value)
    if not value:
        raise InvalidArgument(field, "is required")
    if not _ROLE_NAME.fullmatch(value):
        raise InvalidArgument(field, "must be 2 to 40 lowercase letters, digits or underscores, starting with a letter")
    return value


def validate_permissions(field: str, requested: list[str]) -> tuple[str, ...]:
    if len(requested) > MAX_PERMISSIONS:
        raise InvalidArgument(field, f"must hold at most {MAX_PERMISSIONS} permissions")
    for permission in requested:
        if permission in CATALOGUE or _APPLICATION_PERMISSION.fullmatch(permission):
            continue
        if permission.startswith(APPLICATION_PREFIX):
            raise InvalidArgument(
                field, f"'{permission[:100]}' is not a valid application permission ({APPLICATION_PATTERN})"
            )
        raise InvalidArgument(field, f"'{permission[:100]}' is not a Tenantry permission (see GET /api/v1/permissions)")
    return tuple(sorted(set(requested)))


async def permissions_of(
    session: AsyncSession, tenant_id: UUID, role: str, *, lock: str | None = None
) -> tuple[str, ...]:
    """What a role grants in a tenant; NotFound for a role the tenant does not have."""
    if role in BUILT_IN:
        return BUILT_IN[role][1]
    found = await role_rows.find_role(session, tenant_id, role, lock=lock)
    if found is None:
        raise NotFound(f"role: the tenant has no role '{role}'")
    return tuple(found.permissions)


async def require_may_grant(session: AsyncSession, principal: Principal, tenant_id: UUID, role: str) -> tuple[str, ...]:
    """The role's permissions, if the caller may hand it out: only owners grant
    owner, and nobody grants a permission they do not hold. The role row stays
    share-locked, so it cannot be deleted before the grant commits."""
    permissions = await permissions_of(session, tenant_id, role, lock="share")
    if role == OWNER and OWNER not in principal.roles:
        raise PermissionDenied("role: only owners may grant the owner role", reason=Reason.OWNER_REQUIRED)
    require_holds(principal, permissions, refusal=f"role: '{role}' grants permissions you do not hold:")
    return permissions


class RoleService:
    def __init__(self, *, outbox: Outbox, revoke_members: MemberSessionRevoker) -> None:
        self._outbox = outbox
        self._revoke_members = revoke_members

    async def list_roles(self, session: AsyncSession, principal: Principal) -> list[RoleView]:
        tenant_id = tenant_of(principal)
        built_in = [
            RoleView(name, description, permissions, True) for name, (description, permissions) in BUILT_IN.items()
        ]
        own = [
            RoleView(row.name, row.description, tuple(row.permissions), False, row.created_at, row.updated_at)
            for row in await role_rows.list_roles(session, tenant_id)
        ]
        return built_in + own

    async def create(
        self, session: AsyncSession, principal: Principal, *, name: str, description: str, permissions: list[str]
    ) -> RoleView:
        tenant_id = tenant_of(principal)
        name = role_name("name", name)
        if name in BUILT_IN:
            raise AlreadyExists(f"name: '{name}' is a built-in role")
        if name.startswith(RESERVED_ROLE_PREFIX):
            raise InvalidArgument("name", f"names starting with '{RESERVED_ROLE_PREFIX}' are reserved for operators")
        description = validate_text("description", description, maximum=500, required=False)
        granted = validate_permissions("permissions", permissions)
        require_holds(principal, granted)
        row = await role_rows.insert_role(
            session, tenant_id=tenant_id, name=name, description=description, permissions=list(granted), now=_now()
        )
        if row is None:
            raise AlreadyExists(f"name: the tenant already has a role '{name}'")
        await self._outbox.record(
            session,
            action="role.created",
            resource_type="role",
            resource_id=name,
            details={"permissions": list(granted)},
        )
        return RoleView(row.name, row.description, tuple(row.permissions), False, row.created_at, row.updated_at)

    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        name: str,
        description: str | None,
        permissions: list[str] | None,
    ) -> RoleView:
        tenant_id = tenant_of(principal)
        name = self._editable(name)
        current = await role_rows.find_role(session, tenant_id, name, lock="update")
        if current is None:
            raise NotFound(f"name: the tenant has no role '{name}'")
        before = tuple(current.permissions)  # the update refreshes current in place
        # Nobody edits a role that grants more than they hold, nor makes it grant more.
        require_holds(principal, before)
        granted = before if permissions is None else validate_permissions("permissions", permissions)
        require_holds(principal, granted)
        new_description = (
            current.description
            if description is None
            else validate_text("description", description, maximum=500, required=False)
        )
        row = await role_rows.update_role(
            session, tenant_id, name, description=new_description, permissions=list(granted), now=_now()
        )
        removed = sorted(set(before) - set(granted))
        revoked = 0
        if removed:
            # Tokens already issued carry the old permissions: end them now.
            holders = await memberships.holders_of_role(session, tenant_id, name)
            revoked = await self._revoke_members(session, tenant_id, holders, "role_changed")
        await self._outbox.record(
            session,
            action="role.updated",
            resource_type="role",
            resource_id=name,
            details={"permissions": list(granted), "removed": removed, "sessions_revoked": revoked},
        )
        return RoleView(row.name, row.description, tuple(row.permissions), False, row.created_at, row.updated_at)

    async def delete(self, session: AsyncSession, principal: Principal, *, name: str) -> None:
        tenant_id = tenant_of(principal)
        name = self._editable(name)
        current = await role_rows.find_role(session, tenant_id, name, lock="update")
        if current is None:
            raise NotFound(f"name: the tenant has no role '{name}'")
        require_holds(principal, current.permissions)
        if await memberships.holders_of_role(session, tenant_id, name) or await invitations.count_open_with_role(
            session, tenant_id, name
        ):
            raise FailedPrecondition(
                f"name: role '{name}' is held by members or offered in open invitations",
                violation=Precondition.ROLE_IN_USE,
                subject=f"roles/{name}",
            )
        await role_rows.delete_role(session, tenant_id, name)
        await self._outbox.record(session, action="role.deleted", resource_type="role", resource_id=name)

    @staticmethod
    def _editable(name: str) -> str:
        name = role_name("name", name)
        if name in BUILT_IN:
            raise PermissionDenied(
                f"name: '{name}' is a built-in role and cannot be changed", reason=Reason.BUILT_IN_ROLE
            )
        return name


def require_holds(
    principal: Principal,
    permissions: tuple[str, ...] | list[str],
    *,
    refusal: str = "permissions: you do not hold",
) -> None:
    """Nobody grants more than they hold: to a role, a member, an API key or a service account."""
    lacking = missing(principal.permissions, permissions)
    if lacking:
        raise PermissionDenied(
            f"{refusal} {', '.join(lacking[:5])}",
            reason=Reason.PERMISSIONS_NOT_HELD,
            metadata={"permission": ",".join(lacking)},
        )


def _now() -> datetime:
    return datetime.now(UTC)
