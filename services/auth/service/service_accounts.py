"""Service accounts: who may make them, with which permissions, and their credentials.

A tenant's accounts live in its scope and hold no permission their creator
lacks (the same catalogue as roles, application permissions included). The
platform's accounts (no tenant) are made by the operator or provisioned from
settings at start, and hold only the platform service permissions below,
which no tenant role or tenant account can ever hold.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.error_details import Precondition, Reason
from kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from kit.outbox import Outbox
from kit.revocations import RevokedSessions
from kit.tokens import CLOCK_LEEWAY
from kit.validation import validate_text
from services.auth.models import ServiceAccount, ServiceAccountCredential
from services.auth.repository import service_accounts as account_rows
from services.auth.service.client_keys import registered_key
from services.auth.service.revocation_feed import end_tokens_of
from services.auth.service.roles import require_holds, validate_permissions

# What Tenantry's own services call each other with, named by the internal RPCs' access rules.
PLATFORM_SERVICE_PERMISSIONS: dict[str, str] = {
    "audit.ingest": "Append events to any trail (outbox relays).",
    "auth.provision_owner": "Provision tenants' owners, status and account settings in auth (the tenants service).",
    "auth.revocations.watch": "Stream revoked sessions (every service verifying tokens).",
    "auth.introspect": "Introspect access tokens.",
}
PLATFORM_SCOPE = "platform"
CLIENT_ID_PREFIX = "sa"
SECRET_PREFIX = "tsa_"
MAX_CREDENTIALS = 10
CLIENT_SECRET, PUBLIC_KEY = "client_secret", "public_key"


def client_id_of(tenant_id: UUID | None, account_id: UUID) -> str:
    """The scope in the clear, so the grant binds it before looking the account up."""
    scope = PLATFORM_SCOPE if tenant_id is None else tenant_id.hex
    return f"{CLIENT_ID_PREFIX}_{scope}_{account_id.hex}"


def parse_client_id(client_id: str) -> tuple[UUID | None, UUID] | None:
    """(tenant or None for the platform, account id), or None if it is none of ours."""
    parts = client_id.split("_")
    if len(parts) != 3 or parts[0] != CLIENT_ID_PREFIX or len(client_id) > 100:
        return None
    try:
        tenant = None if parts[1] == PLATFORM_SCOPE else UUID(hex=parts[1])
        return tenant, UUID(hex=parts[2])
    except ValueError:
        return None


def hash_client_secret(secret: str) -> bytes:
    """SHA-256: the secret is 256 random bits, so a slow hash would add cost, not safety."""
    return hashlib.sha256(secret.encode()).digest()


def new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class AccountView:
    account: ServiceAccount
    credentials: list[ServiceAccountCredential]

    @property
    def client_id(self) -> str:
        return client_id_of(self.account.tenant_id, self.account.id)


@dataclass(frozen=True)
class NewSecret:
    credential: ServiceAccountCredential
    client_id: str
    secret: str


def scope_of_manager(principal: Principal) -> UUID | None:
    """The scope a manager acts in: their tenant, or the platform for the operator."""
    if principal.tenant_id is not None:
        return principal.tenant_id
    if principal.is_platform_admin:
        return None
    raise PermissionDenied(
        "only a tenant's admins or the platform operator manage service accounts", reason=Reason.TENANT_REQUIRED
    )


def allowed_permissions(principal: Principal, tenant_id: UUID | None, requested: list[str]) -> tuple[str, ...]:
    if tenant_id is None:
        unknown = [p for p in requested if p not in PLATFORM_SERVICE_PERMISSIONS]
        if unknown:
            raise InvalidArgument(
                "permissions",
                f"'{unknown[0][:100]}' is not a platform service permission"
                f" ({', '.join(PLATFORM_SERVICE_PERMISSIONS)})",
            )
        return tuple(sorted(set(requested)))
    granted = validate_permissions("permissions", requested)
    require_holds(principal, granted)
    return granted


class ServiceAccountService:
    def __init__(self, *, outbox: Outbox, revoked: RevokedSessions, token_ttl: timedelta) -> None:
        self._outbox = outbox
        self._revoked = revoked
        self._token_ttl = token_ttl

    async def create(
        self, session: AsyncSession, principal: Principal, *, name: str, description: str, permissions: list[str]
    ) -> AccountView:
        tenant_id = scope_of_manager(principal)
        granted = allowed_permissions(principal, tenant_id, permissions)
        account = await self.insert(
            session,
            tenant_id=tenant_id,
            name=validate_text("name", name, maximum=100),
            description=validate_text("description", description, maximum=500, required=False),
            permissions=granted,
            created_by=principal.user_id,
        )
        return AccountView(account, [])

    async def insert(
        self,
        session: AsyncSession,
        *,
        tenant_id: UUID | None,
        name: str,
        description: str,
        permissions: tuple[str, ...],
        created_by: UUID | None,
        account_id: UUID | None = None,
    ) -> ServiceAccount:
        account = ServiceAccount(
            id=account_id or uuid.uuid4(),
            tenant_id=tenant_id,
            name=name,
            description=description,
            permissions=list(permissions),
            created_by=created_by,
            created_at=_now(),
        )
        if not await account_rows.insert_account(session, account):
            raise AlreadyExists(f"name: a service account named '{name}' exists already")
        await self._record(session, "service_account.created", account, {"permissions": list(permissions)})
        return account

    async def list_accounts(self, session: AsyncSession, principal: Principal) -> list[AccountView]:
        accounts = await account_rows.list_accounts(session, scope_of_manager(principal))
        credentials = await account_rows.credentials_of(session, [account.id for account in accounts])
        return [AccountView(a, [c for c in credentials if c.account_id == a.id]) for a in accounts]

    async def get(self, session: AsyncSession, principal: Principal, account_id: str) -> AccountView:
        account = await self._find(session, principal, account_id)
        return AccountView(account, await account_rows.credentials_of(session, [account.id]))

    async def delete(self, session: AsyncSession, principal: Principal, account_id: str) -> None:
        account = await self._find(session, principal, account_id, lock=True)
        credentials = await account_rows.credentials_of(session, [account.id])
        await account_rows.delete_account(session, account.id)
        revoked = await self._revoke(session, [credential.id for credential in credentials])
        await self._record(session, "service_account.deleted", account, {"tokens_revoked_for": revoked})

    async def add_secret(
        self, session: AsyncSession, principal: Principal, account_id: str, *, rotate: bool = False
    ) -> NewSecret:
        account = await self._find(session, principal, account_id, lock=True)
        secret = new_client_secret()
        new = await self.add_secret_to(session, account, secret)
        if rotate:
            dropped = await account_rows.delete_credentials(session, account.id, type_=CLIENT_SECRET, keep=new.id)
            revoked = await self._revoke(session, dropped)
            await self._record(session, "service_account.secret_rotated", account, {"revoked": revoked})
        return NewSecret(new, client_id_of(account.tenant_id, account.id), secret)

    async def add_secret_to(
        self, session: AsyncSession, account: ServiceAccount, secret: str
    ) -> ServiceAccountCredential:
        credential = self._credential(account, type=CLIENT_SECRET)
        credential.secret_hash = hash_client_secret(secret)
        credential.secret_prefix = secret[: len(SECRET_PREFIX) + 4]
        await self._insert_credential(session, account, credential)
        return credential

    async def add_key(
        self, session: AsyncSession, principal: Principal, account_id: str, jwk: dict[str, Any]
    ) -> ServiceAccountCredential:
        key = registered_key("public_key_jwk", jwk)
        account = await self._find(session, principal, account_id, lock=True)
        credential = self._credential(account, type=PUBLIC_KEY)
        credential.kid, credential.algorithm, credential.public_jwk = key.kid, key.algorithm, key.jwk
        await self._insert_credential(session, account, credential)
        return credential

    async def revoke_credential(
        self, session: AsyncSession, principal: Principal, account_id: str, credential_id: str
    ) -> None:
        account = await self._find(session, principal, account_id, lock=True)
        wanted = _uuid("credential_id", credential_id)
        dropped = await account_rows.delete_credentials(session, account.id, credential_id=wanted)
        if not dropped:
            raise NotFound("credential_id: the account has no such credential")
        await self._revoke(session, dropped)
        await self._record(session, "service_account.credential_revoked", account, {"credential_id": str(wanted)})

    async def revoke_credentials(self, session: AsyncSession, account: ServiceAccount, ids: list[UUID]) -> None:
        """Ends the tokens issued with these (already deleted) credentials, everywhere within a second."""
        await self._revoke(session, ids)

    async def _insert_credential(
        self, session: AsyncSession, account: ServiceAccount, credential: ServiceAccountCredential
    ) -> None:
        if await account_rows.count_credentials(session, account.id) >= MAX_CREDENTIALS:
            raise FailedPrecondition(
                f"the account has {MAX_CREDENTIALS} credentials; revoke one first",
                violation=Precondition.CREDENTIALS_LIMIT,
                subject=f"service-accounts/{account.id}",
            )
        if not await account_rows.insert_credential(session, credential):
            raise AlreadyExists(f"public_key_jwk: the account has a key with kid '{credential.kid}' already")
        details = {"credential_id": str(credential.id), "type": credential.type}
        if credential.kid:
            details |= {"kid": credential.kid, "algorithm": credential.algorithm or ""}
        await self._record(session, "service_account.credential_added", account, details)

    async def _find(
        self, session: AsyncSession, principal: Principal, account_id: str, *, lock: bool = False
    ) -> ServiceAccount:
        account = await account_rows.find_account(
            session, scope_of_manager(principal), _uuid("id", account_id), lock=lock
        )
        if account is None:
            raise NotFound("id: no such service account")
        return account

    async def _revoke(self, session: AsyncSession, credential_ids: list[UUID]) -> list[str]:
        until = datetime.now(UTC) + self._token_ttl + timedelta(seconds=CLOCK_LEEWAY)
        await end_tokens_of(session, self._revoked, credential_ids, until)
        return [str(credential_id) for credential_id in credential_ids]

    async def _record(
        self, session: AsyncSession, action: str, account: ServiceAccount, details: dict[str, Any]
    ) -> None:
        await self._outbox.record(
            session,
            action=action,
            resource_type="service_account",
            resource_id=account.id,
            tenant_id=account.tenant_id,
            details={"name": account.name, "category": "admin", **details},
        )

    @staticmethod
    def _credential(account: ServiceAccount, *, type: str) -> ServiceAccountCredential:
        return ServiceAccountCredential(
            id=uuid.uuid4(), account_id=account.id, tenant_id=account.tenant_id, type=type, created_at=_now()
        )


def _uuid(field: str, value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidArgument(field, "must be a UUID") from None


def _now() -> datetime:
    return datetime.now(UTC)
