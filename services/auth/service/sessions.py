"""Login, refresh with rotation and reuse detection, logout; token issuance."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import PLATFORM_ADMIN_ROLE, Principal
from kit.db import Database, after_commit, bind_scope
from kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from kit.outbox import Outbox
from kit.revocations import RevokedSessions
from kit.tokens import ACCESS_TOKEN_CLAIM_TYPE, ACCESS_TOKEN_HEADER_TYPE, ALGORITHM, CLOCK_LEEWAY
from kit.validation import PASSWORD_MAX_BYTES, normalize_email
from services.auth import repository
from services.auth.models import User
from services.auth.service.passwords import PasswordHasher
from services.auth.service.signing_keys import SigningKeys

LOGIN_FAILED = "invalid email or password"
REFRESH_FAILED = "refresh token is invalid, expired or revoked"


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


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_refresh_token(user_id: UUID) -> str:
    # The subject travels in the clear before the secret, so that a refresh
    # can bind it for row-level security before looking the hash up. Knowing
    # a user id gains nothing: the lookup is by the whole token's hash.
    return f"{user_id.hex}.{secrets.token_urlsafe(32)}"


def subject_of_refresh_token(token: str) -> UUID:
    subject, _, secret = token.partition(".")
    try:
        if not secret:
            raise ValueError
        return UUID(hex=subject)
    except ValueError:
        raise Unauthenticated(REFRESH_FAILED) from None


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
        async with database.unit_of_work() as session:
            user = await repository.find_user_by_email(session, email)
        verified = await self._hasher.verify(password, user.password_hash if user else None)
        async with database.unit_of_work() as session:
            return await self._complete_login(session, email, user if verified else None, user, tenant_slug)

    async def _complete_login(
        self, session: AsyncSession, email: str, user: User | None, claimed: User | None, tenant_slug: str
    ) -> IssuedTokens:
        if user is None:
            await self._outbox.record(
                session,
                action="auth.login.failed",
                resource_type="user",
                resource_id=claimed.id if claimed else email,
                user_id=claimed.id if claimed else None,
                details={"email": email, "reason": "bad_password" if claimed else "unknown_user"},
            )
            raise Unauthenticated(LOGIN_FAILED, keeps_changes=True)

        # The subject alone lets through the user's memberships and the rows
        # this login writes (the session and refresh policies match on it).
        await bind_scope(session, subject=user.id)
        tenant_id, roles = await self._choose_tenant(session, user.id, user.is_platform_admin, tenant_slug.strip())
        now = datetime.now(UTC)
        session_id = await repository.insert_session(session, user_id=user.id, tenant_id=tenant_id, now=now)
        tokens = await self._issue(session, user.id, tenant_id, roles, session_id, now)
        await self._outbox.record(
            session,
            action="auth.login.succeeded",
            resource_type="session",
            resource_id=session_id,
            tenant_id=tenant_id,
            user_id=user.id,
            details={"email": email},
        )
        return tokens

    async def _choose_tenant(
        self, session: AsyncSession, user_id: UUID, is_platform_admin: bool, tenant_slug: str
    ) -> tuple[UUID | None, list[str]]:
        if is_platform_admin and not tenant_slug:
            return None, [PLATFORM_ADMIN_ROLE]
        memberships = await repository.memberships_of_user(session, user_id)
        if tenant_slug:
            chosen = next((m for m in memberships if m.slug == tenant_slug), None)
            if chosen is None:
                raise PermissionDenied(f"tenant_slug: not a member of tenant '{tenant_slug}'")
        elif len(memberships) == 1:
            chosen = memberships[0]
        elif not memberships:
            raise PermissionDenied("the user is not a member of any tenant")
        else:
            raise FailedPrecondition("tenant_slug: required, the user belongs to several tenants")
        if not chosen.tenant_active:
            raise PermissionDenied(f"tenant '{chosen.slug}' is suspended")
        return chosen.tenant_id, [chosen.role]

    async def refresh(self, session: AsyncSession, *, refresh_token: str) -> IssuedTokens:
        if not refresh_token:
            raise InvalidArgument("refresh_token", "is required")
        subject = subject_of_refresh_token(refresh_token)
        await bind_scope(session, subject=subject)
        token_hash = hash_refresh_token(refresh_token)
        now = datetime.now(UTC)
        redeemed = await repository.redeem_refresh_token(session, token_hash, now)
        if redeemed is None:
            await self._refuse_refresh(session, token_hash)
            raise Unauthenticated(REFRESH_FAILED)
        roles = await self._current_roles(session, redeemed)
        tokens = await self._issue(session, subject, redeemed.tenant_id, roles, redeemed.session_id, now)
        await self._outbox.record(
            session,
            action="auth.token.refreshed",
            resource_type="session",
            resource_id=redeemed.session_id,
            tenant_id=redeemed.tenant_id,
            user_id=subject,
        )
        return tokens

    async def _current_roles(self, session: AsyncSession, redeemed: repository.RedeemedToken) -> list[str]:
        """Roles as they are now, not as they were at login."""
        if redeemed.tenant_id is None:
            return [PLATFORM_ADMIN_ROLE]
        membership = await repository.membership_role(session, redeemed.tenant_id, redeemed.user_id)
        if membership is None or not membership[1]:
            raise Unauthenticated(REFRESH_FAILED)
        return [membership[0]]

    async def _refuse_refresh(self, session: AsyncSession, token_hash: bytes) -> None:
        """A known token that was already used means it leaked or was replayed:
        RFC 9700 says end the whole session. That revocation must stand even
        though the request fails."""
        known = await repository.find_refresh_token(session, token_hash)
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
        raise Unauthenticated(REFRESH_FAILED, keeps_changes=True)

    async def logout(self, session: AsyncSession, principal: Principal) -> None:
        # The unit of work has bound the caller's tenant, which the session row carries.
        await self._revoke(session, session_id=principal.session_id, reason="logout")
        await self._outbox.record(
            session, action="auth.logout", resource_type="session", resource_id=principal.session_id
        )

    async def revoke_tenant_sessions(self, session: AsyncSession, tenant_id: UUID) -> int:
        return len(await self._revoke(session, tenant_id=tenant_id, reason="tenant_suspended"))

    async def _revoke(
        self, session: AsyncSession, *, reason: str, session_id: UUID | None = None, tenant_id: UUID | None = None
    ) -> list[UUID]:
        # No access token of the session outlives this instant.
        until = datetime.now(UTC) + self._policy.access_ttl + timedelta(seconds=CLOCK_LEEWAY)
        revoked = await repository.revoke_sessions(
            session, reason=reason, revoked_until=until, session_id=session_id, tenant_id=tenant_id
        )

        def publish() -> None:
            for sid in revoked:
                self._revoked.revoke(sid, until)

        after_commit(session, publish)
        return revoked

    async def _issue(
        self,
        session: AsyncSession,
        user_id: UUID,
        tenant_id: UUID | None,
        roles: list[str],
        session_id: UUID,
        now: datetime,
    ) -> IssuedTokens:
        refresh_token = new_refresh_token(user_id)
        await repository.insert_refresh_token(
            session,
            token_hash=hash_refresh_token(refresh_token),
            session_id=session_id,
            user_id=user_id,
            tenant_id=tenant_id,
            now=now,
            expires_at=now + self._policy.refresh_ttl,
        )
        issued_at = int(now.timestamp())
        expires_in = int(self._policy.access_ttl.total_seconds())
        claims = {
            "iss": self._policy.issuer,
            "aud": self._policy.audience,
            "sub": str(user_id),
            "roles": roles,
            "sid": str(session_id),
            "jti": str(uuid.uuid4()),
            "typ": ACCESS_TOKEN_CLAIM_TYPE,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + expires_in,
        }
        if tenant_id is not None:
            claims["tid"] = str(tenant_id)
        kid, private_key = self._keys.signing_key
        access_token = jwt.encode(
            claims, private_key, algorithm=ALGORITHM, headers={"kid": kid, "typ": ACCESS_TOKEN_HEADER_TYPE}
        )
        return IssuedTokens(access_token=access_token, refresh_token=refresh_token, expires_in=expires_in)
