"""The emails of a person's own account, queued in the email outbox with the change that causes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import User
from services.auth.repository import account_tokens, emails
from services.auth.service.opaque_tokens import hash_opaque_token, new_opaque_token

VERIFICATION = "email_verification"
PASSWORD_RESET = "password_reset"
# Where each token's link opens, under PUBLIC_BASE_URL.
LINK_PATHS = {VERIFICATION: "/verify-email", PASSWORD_RESET: "/reset-password"}


@dataclass(frozen=True)
class AccountEmailPolicy:
    public_base_url: str
    verification_ttl: timedelta = timedelta(hours=24)
    reset_ttl: timedelta = timedelta(minutes=30)


class AccountEmails:
    def __init__(self, policy: AccountEmailPolicy) -> None:
        self._policy = policy

    def link(self, path: str, token: str | None = None) -> str:
        base = self._policy.public_base_url.rstrip("/")
        return f"{base}{path}?token={token}" if token else f"{base}{path}"

    async def send_token(self, session: AsyncSession, user: User, purpose: str, *, tenant_id: UUID | None) -> None:
        """A new single-use token of the purpose (earlier ones stop working), emailed to the user.
        Needs the user bound as the subject."""
        now = datetime.now(UTC)
        ttl = self._policy.verification_ttl if purpose == VERIFICATION else self._policy.reset_ttl
        token = new_opaque_token(user.id)
        await account_tokens.replace_token(
            session,
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_opaque_token(token),
            now=now,
            expires_at=now + ttl,
        )
        await self.send(
            session,
            user,
            purpose,
            tenant_id=tenant_id,
            link=self.link(LINK_PATHS[purpose], token),
            expires_at=(now + ttl).isoformat(),
        )

    async def send(
        self, session: AsyncSession, user: User, template: str, *, tenant_id: UUID | None, **payload: Any
    ) -> None:
        await emails.enqueue_email(
            session,
            tenant_id=tenant_id,
            recipient=user.email,
            template=template,
            payload={"full_name": user.full_name, **payload},
            now=datetime.now(UTC),
        )
