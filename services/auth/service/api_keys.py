"""API keys: made by a tenant's people, exchanged by machines for short-lived access tokens.

A key is `tnt_<prefix>_<secret>`: 8 random base32 characters shown in listings
(unique, so the exchange finds the key by them) and 256 random bits of secret.
Only HMAC-SHA-256(API_KEY_HASH_KEY, whole key) is stored: the keys carry enough
entropy that a slow hash adds nothing, and a fast keyed hash lets a stolen
table alone check no guess. Revoking a key lists its id with the revoked
sessions, since its access tokens carry it as their `sid`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.api_keys import API_KEY_MARK, ExchangedToken, api_key_prefix
from kit.context import Principal
from kit.db import Database
from kit.error_details import Precondition, Reason
from kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from kit.outbox import Outbox
from kit.pagination import decode_cursor, one_page
from kit.revocations import RevokedSessions
from kit.tokens import API_KEY_ACTOR, CLOCK_LEEWAY
from kit.validation import validate_text
from services.auth.models import ApiKey
from services.auth.repository import api_keys as key_rows
from services.auth.service.access_tokens import sign_access_token
from services.auth.service.revocation_feed import end_tokens_of
from services.auth.service.roles import require_holds, validate_permissions
from services.auth.service.signing_keys import SigningKeys
from services.auth.service.tenancy import tenant_of

PREFIX_BYTES = 5  # 8 base32 characters
SECRET_BYTES = 32  # 256 bits, 52 base32 characters
# The exchange's tokens live at most this long, whatever the setting says.
MAX_TOKEN_TTL = timedelta(minutes=5)
INVALID_KEY = "API key is not valid"
PREFIX_ATTEMPTS = 5


@dataclass(frozen=True)
class ApiKeyPolicy:
    # None: no key can be made or exchanged (API_KEY_HASH_KEY unset).
    hash_key: bytes | None
    token_ttl: timedelta
    issuer: str
    audience: str


@dataclass(frozen=True)
class CreatedApiKey:
    key: ApiKey
    # The whole key, shown once.
    secret: str


def key_state(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def _base32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=").lower()


class ApiKeyService:
    def __init__(self, *, outbox: Outbox, keys: SigningKeys, revoked: RevokedSessions, policy: ApiKeyPolicy) -> None:
        self._outbox = outbox
        self._keys = keys
        self._revoked = revoked
        self._policy = policy
        self._token_ttl = min(policy.token_ttl, MAX_TOKEN_TTL)

    def _hash(self, api_key: str, refusal: Exception) -> bytes:
        if self._policy.hash_key is None:
            raise refusal
        return hmac.new(self._policy.hash_key, api_key.encode(), hashlib.sha256).digest()

    async def create(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        name: str,
        permissions: list[str],
        expires_at: datetime | None,
    ) -> CreatedApiKey:
        tenant_id = tenant_of(principal)
        if principal.actor_type == API_KEY_ACTOR:
            raise PermissionDenied(
                "an API key cannot create API keys; a person with api_keys.manage can",
                reason=Reason.API_KEY_NOT_ALLOWED,
            )
        name = validate_text("name", name, maximum=100)
        granted = validate_permissions("permissions", permissions)
        if not granted:
            raise InvalidArgument("permissions", "name at least one permission")
        require_holds(principal, granted)
        now = datetime.now(UTC)
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument("expire_time", "must be in the future")
        disabled = FailedPrecondition(
            "API keys are not enabled on this server (API_KEY_HASH_KEY is not set)",
            violation=Precondition.FEATURE_DISABLED,
            subject="API_KEY_HASH_KEY",
        )
        for _ in range(PREFIX_ATTEMPTS):
            # 40 random bits of prefix: a clash is rare, and then another is drawn.
            prefix = _base32(secrets.token_bytes(PREFIX_BYTES))
            secret = f"{API_KEY_MARK}{prefix}_{_base32(secrets.token_bytes(SECRET_BYTES))}"
            key = await key_rows.insert_api_key(
                session,
                key_id=uuid.uuid4(),
                tenant_id=tenant_id,
                name=name,
                prefix=prefix,
                secret_hash=self._hash(secret, disabled),
                permissions=list(granted),
                created_by=principal.user_id,
                created_at=now,
                expires_at=expires_at,
            )
            if key is not None:
                break
        else:
            raise FailedPrecondition(
                "could not draw an unused key prefix; try again",
                violation=Precondition.PREFIX_EXHAUSTED,
                subject="api_keys",
            )
        await self._outbox.record(
            session,
            action="api_key.created",
            resource_type="api_key",
            resource_id=key.id,
            details={
                "name": name,
                "prefix": prefix,
                "permissions": list(granted),
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
        return CreatedApiKey(key, secret)

    async def list_keys(
        self, session: AsyncSession, principal: Principal, *, page_size: int, page_token: str
    ) -> tuple[list[ApiKey], str]:
        keys = await key_rows.list_api_keys(
            session, tenant_of(principal), limit=page_size + 1, after=decode_cursor(page_token)
        )
        return one_page(keys, page_size, lambda key: (key.created_at, key.id))

    async def get(self, session: AsyncSession, principal: Principal, *, key_id: UUID) -> ApiKey:
        key = await key_rows.find_api_key(session, tenant_of(principal), key_id)
        if key is None:
            raise NotFound(f"id: the tenant has no API key '{key_id}'")
        return key

    async def revoke(self, session: AsyncSession, principal: Principal, *, key_id: UUID) -> ApiKey:
        """Revokes the key; a key already revoked is answered as it is."""
        tenant_id = tenant_of(principal)
        now = datetime.now(UTC)
        key = await key_rows.revoke_api_key(session, tenant_id, key_id, revoked_by=principal.user_id, now=now)
        if key is None:
            return await self.get(session, principal, key_id=key_id)
        await self._end_tokens(session, [key.id], now)
        await self._outbox.record(
            session,
            action="api_key.revoked",
            resource_type="api_key",
            resource_id=key.id,
            details={"name": key.name, "prefix": key.prefix},
        )
        return key

    async def end_tenant_tokens(self, session: AsyncSession, tenant_id: UUID) -> int:
        """Ends the live access tokens of the tenant's keys (its suspension); says how many keys.

        The keys stay: exchanges are refused while the tenant is suspended, and after
        it is reactivated they work again once these revocations lapse (at most the
        token lifetime and 5 s)."""
        now = datetime.now(UTC)
        key_ids = await key_rows.live_key_ids(session, tenant_id, now)
        await self._end_tokens(session, key_ids, now)
        return len(key_ids)

    async def _end_tokens(self, session: AsyncSession, key_ids: list[UUID], now: datetime) -> None:
        # No access token of these keys outlives this instant.
        until = now + self._token_ttl + timedelta(seconds=CLOCK_LEEWAY)
        await end_tokens_of(session, self._revoked, key_ids, until)

    async def exchange(self, database: Database, api_key: str) -> ExchangedToken:
        """An access token for the key, if it is known, its secret right, and it is
        neither revoked nor expired nor of a suspended tenant. Records its last use."""
        prefix = api_key_prefix(api_key)
        presented = self._hash(
            api_key, Unauthenticated("API keys are not accepted by this server", reason=Reason.API_KEY_INVALID)
        )
        now = datetime.now(UTC)
        async with database.unit_of_work(scope="") as session:
            found = await key_rows.find_key_to_exchange(session, prefix)
            # The prefix is no secret; only the whole key's hash decides, compared in constant time.
            if found is None or not hmac.compare_digest(found.key.secret_hash, presented):
                raise Unauthenticated(INVALID_KEY, reason=Reason.API_KEY_INVALID)
            key = found.key
            if key.revoked_at is not None:
                raise Unauthenticated("API key has been revoked", reason=Reason.API_KEY_REVOKED)
            lifetime = self._token_ttl
            if key.expires_at is not None:
                lifetime = min(lifetime, key.expires_at - now)
            if lifetime < timedelta(seconds=1):
                raise Unauthenticated("API key has expired", reason=Reason.API_KEY_EXPIRED)
            if not found.tenant_active:
                raise Unauthenticated("the API key's tenant is suspended", reason=Reason.TENANT_SUSPENDED)
            if not await key_rows.record_use(session, key.id, now):
                raise Unauthenticated("API key has been revoked", reason=Reason.API_KEY_REVOKED)
        expires_in = int(lifetime.total_seconds())
        token = sign_access_token(
            self._keys,
            issuer=self._policy.issuer,
            audience=self._policy.audience,
            subject=key.id,
            session_id=key.id,
            tenant_id=key.tenant_id,
            roles=[],
            permissions=key.permissions,
            now=now,
            ttl_seconds=expires_in,
            actor_type=API_KEY_ACTOR,
        )
        return ExchangedToken(token, float(expires_in))
