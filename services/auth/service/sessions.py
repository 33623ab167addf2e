"""Login, tenant switching, refresh with rotation and reuse detection, logout; token issuance."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import PLATFORM_ADMIN_ROLE, Principal, current_request
from kit.db import Database, after_commit, bind_scope
from kit.error_details import Reason
from kit.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from kit.outbox import Outbox, valid_ip
from kit.revocations import RevokedSessions
from kit.tokens import CLOCK_LEEWAY
from kit.validation import PASSWORD_MAX_BYTES, normalize_email
from services.auth.models import User
from services.auth.repository import directory, invitations, memberships, users
from services.auth.repository import service_accounts as service_account_rows
from services.auth.repository import sessions as session_rows
from services.auth.service.access_tokens import sign_access_token
from services.auth.service.login_tenant import default_membership, require_usable
from services.auth.service.opaque_tokens import hash_opaque_token, new_opaque_token, scope_of_opaque_token
from services.auth.service.passwords import PasswordHasher
from services.auth.service.revocation_feed import end_tokens_of
from services.auth.service.roles import BUILT_IN, PLATFORM_OPERATOR_PERMISSIONS, permissions_of
from services.auth.service.signing_keys import SigningKeys
from services.auth.service.throttling import LOGIN_FAILURES, count_attempt, forgive, refuse_if_blocked

LOGIN_FAILED = "invalid email or password"
REFRESH_FAILED = "refresh token is invalid, expired or revoked"
# The audit trail's resource_id holds 200 characters; longer emails are named by hash.
RESOURCE_ID_MAX = 200


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_ttl: timedelta
    refresh_ttl: timedelta


@dataclass(frozen=True)
class Grant:
    """What a session may do: its tenant (None for the operator), role and permissions."""

    tenant_id: UUID | None
    role: str
    permissions: tuple[str, ...]


OPERATOR_GRANT = Grant(None, PLATFORM_ADMIN_ROLE, PLATFORM_OPERATOR_PERMISSIONS)


class SessionService:
    def __init__(
        self,
        *,
        keys: SigningKeys,
        hasher: PasswordHasher,
        outbox: Outbox,
        revoked: RevokedSessions,
        policy: TokenPolicy,
    ) -> None:
        self._keys = keys
        self._hasher = hasher
        self._outbox = outbox
        self._revoked = revoked
        self._policy = policy

    async def login(self, database: Database, *, email: str, password: str, tenant_slug: str) -> IssuedTokens:
        """Two short units of work around the password check, so that no pooled
        connection waits on bcrypt: a burst of logins cannot starve other RPCs."""
        email = normalize_email("email", email)
        if not password:
            raise InvalidArgument("password", "is required")
        if len(password.encode("utf-8")) > PASSWORD_MAX_BYTES:
            raise InvalidArgument("password", f"must be at most {PASSWORD_MAX_BYTES} bytes")
        upgraded = None
        with self._hasher.slot() as hashing:
            async with database.unit_of_work() as session:
                failures_on_record = await refuse_if_blocked(session, LOGIN_FAILURES, email)
                user = await users.find_user_by_email(session, email)
            verified = await hashing.verify(password, user.password_hash if user else None)
            if verified and user is not None and self._hasher.needs_rehash(user.password_hash):
                # Another cost than configured: upgraded now, while the password is at hand.
                upgraded = await hashing.hash(password)
        async with database.unit_of_work() as session:
            if upgraded is not None and user is not None:
                await users.set_password_hash(session, user.id, upgraded, datetime.now(UTC))
            return await self._complete_login(
                session, email, user if verified else None, user, tenant_slug.strip(), failures_on_record
            )

    async def _complete_login(
        self,
        session: AsyncSession,
        email: str,
        user: User | None,
        claimed: User | None,
        tenant_slug: str,
        failures_on_record: bool,
    ) -> IssuedTokens:
        if user is None:
            await count_attempt(session, LOGIN_FAILURES, email)
            await self._outbox.record(
                session,
                action="auth.login.failed",
                resource_type="user",
                resource_id=claimed.id if claimed else _resource_id_of_email(email),
                user_id=claimed.id if claimed else None,
                details={
                    "email": email,
                    "category": "auth",
                    "outcome": "failure",
                    "reason": "bad_password" if claimed else "unknown_user",
                },
            )
            raise Unauthenticated(LOGIN_FAILED, reason=Reason.INVALID_CREDENTIALS, keeps_changes=True)

        # The subject alone lets through the user's memberships and the rows
        # this login writes (the session and refresh policies match on it).
        await bind_scope(session, subject=user.id)
        if failures_on_record:
            # A failure counted after the check above stays on record: forgiving less is the safe side.
            await forgive(session, LOGIN_FAILURES, email)
        grant = await self._choose_grant(session, user, tenant_slug)
        return await self.start_session(session, user.id, grant, how="password")

    async def switch_tenant(self, session: AsyncSession, principal: Principal, *, tenant_slug: str) -> IssuedTokens:
        """A new session in another of the caller's tenants; the current one stays."""
        slug = tenant_slug.strip()
        if not slug:
            raise InvalidArgument("tenant_slug", "is required")
        await bind_scope(session, subject=principal.user_id)
        user = await users.find_user(session, principal.user_id)
        if user is None:
            raise Unauthenticated("the user no longer exists", reason=Reason.USER_NOT_FOUND)
        return await self.start_session(
            session, user.id, await self._choose_grant(session, user, slug), how="tenant_switch"
        )

    async def start_session(self, session: AsyncSession, user_id: UUID, grant: Grant, *, how: str) -> IssuedTokens:
        """Records a new session for the grant (a login, a switch, an accepted invitation) and issues its tokens."""
        if grant.tenant_id is not None:
            await bind_scope(session, tenant=grant.tenant_id, subject=user_id)
        now = datetime.now(UTC)
        request = current_request()
        session_id = await session_rows.insert_session(
            session,
            user_id=user_id,
            tenant_id=grant.tenant_id,
            now=now,
            ip_address=request.peer_ip if request else None,
            user_agent=request.user_agent if request else None,
        )
        if grant.tenant_id is not None:
            await memberships.record_login(session, grant.tenant_id, user_id, now)
        tokens = await self._issue(session, user_id, grant, session_id, now)
        await self._outbox.record(
            session,
            action="auth.login.succeeded",
            resource_type="session",
            resource_id=session_id,
            tenant_id=grant.tenant_id,
            user_id=user_id,
            details={"role": grant.role, "category": "auth", "outcome": "success", "reason": how},
        )
        return tokens

    async def _choose_grant(self, session: AsyncSession, user: User, tenant_slug: str) -> Grant:
        """The tenant a login goes to. Without a slug: the user's default
        tenant, else the one used last, else the first joined; memberships
        that cannot be used are passed over, so they never make a login fail."""
        if user.is_platform_admin and not tenant_slug:
            return OPERATOR_GRANT
        all_memberships = await memberships.memberships_of_user(session, user.id)
        if tenant_slug:
            chosen = next((m for m in all_memberships if m.slug == tenant_slug), None)
            if chosen is None:
                raise PermissionDenied(
                    await self._why_not_member(session, user, tenant_slug), reason=Reason.NOT_A_MEMBER
                )
            require_usable(chosen)
        else:
            usable = [m for m in all_memberships if m.status == "active" and m.tenant_active]
            if not usable:
                if all_memberships:
                    require_usable(all_memberships[0])
                raise PermissionDenied("the user is not an active member of any tenant", reason=Reason.NOT_A_MEMBER)
            chosen = default_membership(usable, user.default_tenant_id)
        if chosen.role not in BUILT_IN:
            # A tenant's own role is read under its tenant; start_session binds the same scope anyway.
            await bind_scope(session, tenant=chosen.tenant_id, subject=user.id)
        return Grant(chosen.tenant_id, chosen.role, await permissions_of(session, chosen.tenant_id, chosen.role))

    async def _why_not_member(self, session: AsyncSession, user: User, tenant_slug: str) -> str:
        tenant = await directory.find_tenant_by_slug(session, tenant_slug)
        if tenant is not None:
            await bind_scope(session, tenant=tenant.tenant_id, subject=user.id)
            # Told only to a verified owner of the email: the invitation was sent to it.
            if user.email_verified_at is not None and await invitations.find_open_invitation(
                session, tenant.tenant_id, user.email
            ):
                return f"tenant_slug: your invitation to '{tenant_slug}' has not been accepted yet"
        return f"tenant_slug: not a member of tenant '{tenant_slug}'"

    async def refresh(self, database: Database, *, refresh_token: str) -> IssuedTokens:
        """Rotates the refresh token and issues new tokens with the grant as it is now.

        Three round trips: open and bind (see refresh_transaction), rotate,
        commit. Whatever refuses the refresh rolls the rotation back; a token
        that was already used then ends its whole session, in a transaction
        of its own that commits although the call fails."""
        if not refresh_token:
            raise InvalidArgument("refresh_token", "is required")
        subject = scope_of_opaque_token(
            refresh_token, Unauthenticated(REFRESH_FAILED, reason=Reason.REFRESH_TOKEN_INVALID)
        )
        token_hash = hash_opaque_token(refresh_token)
        next_token = new_opaque_token(subject)
        now = datetime.now(UTC)
        request = current_request()
        event = session_rows.RefreshEvent(
            id=uuid.uuid4(),
            ip_address=valid_ip(request.peer_ip) if request else None,
            user_agent=request.user_agent if request else None,
            request_id=request.request_id if request else None,
        )
        async with session_rows.refresh_transaction(database, subject, token_hash) as connection:
            rotation = await session_rows.rotate_refresh_token(
                connection,
                token_hash=token_hash,
                subject=subject,
                next_token_hash=hash_opaque_token(next_token),
                now=now,
                expires_at=now + self._policy.refresh_ttl,
                event=event,
            )
            grant = _current_grant(rotation) if rotation is not None else None
        if rotation is None or grant is None:
            if rotation is None:
                async with database.unit_of_work() as session:
                    await bind_scope(session, subject=subject)
                    await self._refuse_refresh(session, token_hash)
            raise Unauthenticated(REFRESH_FAILED, reason=Reason.REFRESH_TOKEN_INVALID)
        self._outbox.wake_relay()
        return self._access_tokens(subject, grant, rotation.session_id, now, next_token)

    async def _refuse_refresh(self, session: AsyncSession, token_hash: bytes) -> None:
        """A known token that was already used means it leaked or was replayed:
        RFC 9700 says end the whole session. That revocation must stand even
        though the request fails."""
        known = await session_rows.find_refresh_token(session, token_hash)
        if known is None or known.used_at is None:
            return
        await self._revoke(session, session_id=known.session_id, reason="refresh_token_reused")
        await self._outbox.record(
            session,
            action="auth.refresh.reused",
            resource_type="session",
            resource_id=known.session_id,
            tenant_id=known.tenant_id,
            user_id=known.user_id,
        )
        raise Unauthenticated(REFRESH_FAILED, reason=Reason.REFRESH_TOKEN_INVALID, keeps_changes=True)

    async def logout(self, session: AsyncSession, principal: Principal) -> None:
        # The unit of work has bound the caller's tenant, which the session row carries.
        await self._revoke(session, session_id=principal.session_id, reason="logout")
        await self._outbox.record(
            session, action="auth.logout", resource_type="session", resource_id=principal.session_id
        )

    async def revoke_tenant_sessions(self, session: AsyncSession, tenant_id: UUID) -> int:
        """Ends the tenant's sessions and its service accounts' tokens (whose sid is their credential)."""
        credentials = await service_account_rows.credential_ids_of_tenant(session, tenant_id)
        # Longer than any service token lives (SERVICE_TOKEN_EXPIRE_MINUTES is at most 60).
        until = datetime.now(UTC) + timedelta(hours=1, seconds=CLOCK_LEEWAY)
        await end_tokens_of(session, self._revoked, credentials, until)
        return len(await self._revoke(session, tenant_id=tenant_id, reason="tenant_suspended"))

    async def revoke_member_sessions(
        self, session: AsyncSession, tenant_id: UUID, user_ids: list[UUID], reason: str
    ) -> int:
        """Ends the members' sessions in one tenant, so that a changed role or
        status applies at once (access tokens are refused within a second)."""
        if not user_ids:
            return 0
        return len(await self._revoke(session, tenant_id=tenant_id, user_ids=user_ids, reason=reason))

    async def revoke_user_sessions(
        self, session: AsyncSession, user_id: UUID, reason: str, *, keep_session_id: UUID | None = None
    ) -> int:
        """Ends every session of the user, in every tenant, but keep_session_id (needs the subject bound)."""
        return len(await self._revoke(session, user_id=user_id, reason=reason, except_session_id=keep_session_id))

    async def revoke_session(self, session: AsyncSession, session_id: UUID, reason: str) -> int:
        return len(await self._revoke(session, session_id=session_id, reason=reason))

    async def _revoke(
        self,
        session: AsyncSession,
        *,
        reason: str,
        session_id: UUID | None = None,
        tenant_id: UUID | None = None,
        user_id: UUID | None = None,
        user_ids: list[UUID] | None = None,
        except_session_id: UUID | None = None,
    ) -> list[UUID]:
        # No access token of the session outlives this instant.
        until = datetime.now(UTC) + self._policy.access_ttl + timedelta(seconds=CLOCK_LEEWAY)
        revoked = await session_rows.revoke_sessions(
            session,
            reason=reason,
            revoked_until=until,
            session_id=session_id,
            tenant_id=tenant_id,
            user_id=user_id,
            user_ids=user_ids,
            except_session_id=except_session_id,
        )

        def publish() -> None:
            for sid in revoked:
                self._revoked.revoke(sid, until)

        after_commit(session, publish)
        return revoked

    async def _issue(
        self, session: AsyncSession, user_id: UUID, grant: Grant, session_id: UUID, now: datetime
    ) -> IssuedTokens:
        refresh_token = new_opaque_token(user_id)
        await session_rows.insert_refresh_token(
            session,
            token_hash=hash_opaque_token(refresh_token),
            session_id=session_id,
            user_id=user_id,
            tenant_id=grant.tenant_id,
            now=now,
            expires_at=now + self._policy.refresh_ttl,
        )
        return self._access_tokens(user_id, grant, session_id, now, refresh_token)

    def _access_tokens(
        self, user_id: UUID, grant: Grant, session_id: UUID, now: datetime, refresh_token: str
    ) -> IssuedTokens:
        expires_in = int(self._policy.access_ttl.total_seconds())
        access_token = sign_access_token(
            self._keys,
            issuer=self._policy.issuer,
            audience=self._policy.audience,
            subject=user_id,
            session_id=session_id,
            tenant_id=grant.tenant_id,
            roles=[grant.role],
            permissions=grant.permissions,
            now=now,
            ttl_seconds=expires_in,
        )
        return IssuedTokens(access_token=access_token, refresh_token=refresh_token, expires_in=expires_in)


def _current_grant(rotation: session_rows.Rotation) -> Grant | None:
    """Role and permissions as they are now, not as they were at login; None
    when the membership or the tenant can no longer be used."""
    if rotation.tenant_id is None:
        return OPERATOR_GRANT
    if rotation.role is None or rotation.status != "active" or not rotation.tenant_active:
        return None
    if rotation.role in BUILT_IN:
        return Grant(rotation.tenant_id, rotation.role, BUILT_IN[rotation.role][1])
    if rotation.custom_permissions is None:
        raise NotFound(f"role: the tenant has no role '{rotation.role}'")
    return Grant(rotation.tenant_id, rotation.role, rotation.custom_permissions)


def _resource_id_of_email(email: str) -> str:
    if len(email) <= RESOURCE_ID_MAX:
        return email
    return "sha256:" + hashlib.sha256(email.encode()).hexdigest()
