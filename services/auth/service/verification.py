"""Email verification: a single-use, 24-hour token emailed to the account's address."""

from __future__ import annotations

from datetime import UTC, datetime

from kit.context import Principal
from kit.db import Database, bind_scope
from kit.error_details import Precondition, Reason
from kit.errors import FailedPrecondition, InvalidArgument, Unauthenticated
from kit.outbox import Outbox
from services.auth.repository import account_tokens, users
from services.auth.service.account_emails import VERIFICATION, AccountEmails
from services.auth.service.opaque_tokens import hash_opaque_token, scope_of_opaque_token
from services.auth.service.throttling import CLIENT_REQUESTS, EMAIL_REQUESTS, client_address, limit_request

VERIFICATION_FAILED = "verification token is invalid, expired or used"


class EmailVerification:
    def __init__(self, *, outbox: Outbox, emails: AccountEmails) -> None:
        self._outbox = outbox
        self._emails = emails

    async def verify(self, database: Database, *, token: str) -> None:
        if not token:
            raise InvalidArgument("token", "is required")
        user_id = scope_of_opaque_token(
            token, Unauthenticated(VERIFICATION_FAILED, reason=Reason.VERIFICATION_TOKEN_INVALID)
        )
        async with database.unit_of_work(scope="") as session:
            await bind_scope(session, subject=user_id)
            now = datetime.now(UTC)
            if (
                await account_tokens.redeem_token(session, hash_opaque_token(token), purpose=VERIFICATION, now=now)
                is None
            ):
                raise Unauthenticated(VERIFICATION_FAILED, reason=Reason.VERIFICATION_TOKEN_INVALID)
            await users.mark_email_verified(session, user_id, now)
            await self._outbox.record(
                session,
                action="auth.email.verified",
                resource_type="user",
                resource_id=user_id,
                user_id=user_id,
                details={"category": "auth", "outcome": "success", "reason": "link_used"},
            )

    async def resend(self, database: Database, principal: Principal) -> None:
        async with database.unit_of_work() as session:
            await bind_scope(session, tenant=principal.tenant_id, subject=principal.user_id)
            user = await users.find_user(session, principal.user_id)
            if user is None:
                raise Unauthenticated("the user no longer exists", reason=Reason.USER_NOT_FOUND)
            if user.email_verified_at is not None:
                raise FailedPrecondition(
                    "the email address is already verified",
                    violation=Precondition.EMAIL_ALREADY_VERIFIED,
                    subject=f"users/{user.id}",
                )
            await limit_request(session, EMAIL_REQUESTS, user.email)
            await limit_request(session, CLIENT_REQUESTS, client_address())
            await self._emails.send_token(session, user, VERIFICATION, tenant_id=None)
            await self._outbox.record(
                session,
                action="auth.email.verification_sent",
                resource_type="user",
                resource_id=user.id,
                details={"category": "auth", "outcome": "success", "reason": "resend"},
            )
