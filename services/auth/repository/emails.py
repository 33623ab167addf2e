"""The email outbox: messages written with the change that causes them, sent later."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import EmailMessage


async def enqueue_email(
    session: AsyncSession,
    *,
    tenant_id: UUID | None,
    recipient: str,
    template: str,
    language: str,
    payload: dict[str, Any],
    now: datetime,
) -> UUID:
    message_id = uuid.uuid4()
    await session.execute(
        insert(EmailMessage).values(
            id=message_id,
            tenant_id=tenant_id,
            recipient=recipient,
            template=template,
            language=language,
            payload=payload,
            status="queued",
            attempts=0,
            created_at=now,
        )
    )
    return message_id
