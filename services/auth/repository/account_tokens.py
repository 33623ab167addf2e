"""Emailed tokens of a person's own (verification, password reset), guarded by subject."""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import AccountToken


async def replace_token(
    session: AsyncSession,
    *,
    user_id: UUID,
    purpose: str,
    token_hash: bytes,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Issues a token; the user's earlier unused tokens of that purpose stop working."""
    await session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
        .values(used_at=now)
    )
    await session.execute(
        insert(AccountToken).values(
            id=uuid.uuid4(),
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def redeem_token(session: AsyncSession, token_hash: bytes, *, purpose: str, now: datetime) -> UUID | None:
    """Marks an unused, unexpired token used, atomically; its user, or None."""
    return (
        await session.execute(
            update(AccountToken)
            .where(
                AccountToken.token_hash == token_hash,
                AccountToken.purpose == purpose,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(AccountToken.user_id)
        )
    ).scalar_one_or_none()
