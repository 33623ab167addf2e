"""Forgotten, reset and changed passwords.

Asking for a reset answers the same, in about the same time, whether or not
the email is registered: the email goes out through the outbox, later, and
both paths do the same work up to the point of queueing it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.db import Database, bind_scope
from kit.error_details import Reason
from kit.errors import InvalidArgument, Unauthenticated
from kit.outbox import Outbox
from kit.validation import normalize_email, validate_password
from services.auth.models import User
from services.auth.repository import account_tokens, users
from services.auth.service.account_emails import PASSWORD_RESET, AccountEmails
from services.auth.service.opaque_tokens import hash_opaque_token, scope_of_opaque_token
from services.auth.service.passwords import PasswordHasher
from services.auth.service.sessions import SessionService
from services.auth.service.throttling import (
    CLIENT_REQUESTS,
    EMAIL_REQUESTS,
    LOGIN_FAILURES,
    client_address,
    count_attempt,
    forgive,
    limit_request,
    refuse_if_blocked,
)

RESET_FAILED = "reset token is invalid, expired or used"
PASSWORD_CHANGED = "password_changed"


class PasswordReset:
    def __init__(
        self, *, hasher: PasswordHasher, outbox: Outbox, emails: AccountEmails, sessions: SessionService
    ) -> None:
        self._hasher = hasher
        self._outbox = outbox
        self._emails = emails
        self._sessions = sessions

    async def forgot(self, database: Database, *, email: str) -> None:
        email = normalize_email("email", email)
        async with database.unit_of_work(scope="") as session:
            await limit_request(session, EMAIL_REQUESTS, email)
            await limit_request(session, CLIENT_REQUESTS, client_address())
            user = await users.find_user_by_email(session, email)
            if user is not None:
                await bind_scope(session, subject=user.id)
                await self._emails.send_token(session, user, PASSWORD_RESET, tenant_id=None)
            await self._outbox.record(
                session,
                action="auth.password.reset_requested",
                resource_type="user",
                resource_id=user.id if user else "unknown",
                user_id=user.id if user else None,
                details={
                    "category": "auth",
                    "outcome": "success" if user else "failure",
                    "reason": "email_sent" if user else "unknown_email",
                },
            )

    async def reset(self, database: Database, *, token: str, new_password: str) -> None:
        """Sets the password, proves the email, and ends every session of the user."""
        if not token:
            raise InvalidArgument("token", "is required")
        validate_password("new_password", new_password)
        user_id = scope_of_opaque_token(token, Unauthenticated(RESET_FAILED, reason=Reason.RESET_TOKEN_INVALID))
        password_hash = await self._hasher.hash(new_password)
        async with database.unit_of_work(scope="") as session:
            await bind_scope(session, subject=user_id)
            now = datetime.now(UTC)
            if (
                await account_tokens.redeem_token(session, hash_opaque_token(token), purpose=PASSWORD_RESET, now=now)
                is None
            ):
                raise Unauthenticated(RESET_FAILED, reason=Reason.RESET_TOKEN_INVALID)
            user = await users.find_user(session, user_id)
            assert user is not None  # a token's user is never deleted
            await users.set_password_hash(session, user_id, password_hash, now)
            await users.mark_email_verified(session, user_id, now)
            revoked = await self._sessions.revoke_user_sessions(session, user_id, "password_reset")
            await forgive(session, LOGIN_FAILURES, user.email)
            await self._notify_changed(session, user, now)
            await self._outbox.record(
                session,
                action="auth.password.reset",
                resource_type="user",
                resource_id=user_id,
                user_id=user_id,
                details={"category": "auth", "outcome": "success", "reason": "link_used", "sessions_revoked": revoked},
            )

    async def _notify_changed(self, session: AsyncSession, user: User, now: datetime) -> None:
        """Tells the owner, with a way back if it was not them."""
        await self._emails.send(
            session,
            user,
            PASSWORD_CHANGED,
            tenant_id=None,
            changed_at=now.isoformat(),
            link=self._emails.link("/forgot-password"),
        )

    async def change(
        self, database: Database, principal: Principal, *, current_password: str, new_password: str
    ) -> int:
        """Ends the caller's other sessions; the current one stays. Returns how many ended."""
        if not current_password:
            raise InvalidArgument("current_password", "is required")
        validate_password("new_password", new_password)
        async with database.unit_of_work() as session:
            user = await users.find_user(session, principal.user_id)
            if user is None:
                raise Unauthenticated("the user no longer exists", reason=Reason.USER_NOT_FOUND)
            await refuse_if_blocked(session, LOGIN_FAILURES, user.email)
        if not await self._hasher.verify(current_password, user.password_hash):
            async with database.unit_of_work() as session:
                await count_attempt(session, LOGIN_FAILURES, user.email)
                await self._outbox.record(
                    session,
                    action="auth.password.change_failed",
                    resource_type="user",
                    resource_id=user.id,
                    details={"category": "auth", "outcome": "failure", "reason": "bad_password"},
                )
                raise Unauthenticated(
                    "current_password: wrong password", reason=Reason.INVALID_CREDENTIALS, keeps_changes=True
                )
        password_hash = await self._hasher.hash(new_password)
        async with database.unit_of_work() as session:
            await bind_scope(session, tenant=principal.tenant_id, subject=principal.user_id)
            now = datetime.now(UTC)
            await users.set_password_hash(session, user.id, password_hash, now)
            revoked = await self._sessions.revoke_user_sessions(
                session, user.id, "password_changed", keep_session_id=principal.session_id
            )
            await self._notify_changed(session, user, now)
            await self._outbox.record(
                session,
                action="auth.password.changed",
                resource_type="user",
                resource_id=user.id,
                details={"category": "auth", "outcome": "success", "reason": "changed", "sessions_revoked": revoked},
            )
            return revoked
