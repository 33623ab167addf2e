"""The email outbox: messages written with the change that causes them, claimed and sent
later by the email sender, and kept as the delivery log (without their payloads once done)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import after_commit
from services.auth.mail.rendering import DEFAULT_LANGUAGE, LANGUAGES
from services.auth.models import EmailMessage, TenantDirectoryEntry, User

# Set once a unit of work that queued an email commits: wakes this process's sender at once.
email_queued = asyncio.Event()


async def enqueue_email(
    session: AsyncSession,
    *,
    tenant_id: UUID | None,
    recipient: str,
    template: str,
    payload: dict[str, Any],
    now: datetime,
    language: str | None = None,
) -> UUID:
    """Queues an email, due at once. Without a language, the recipient's preferred
    one if templates exist in it, else the default: looked up inside the insert,
    so a caller's answer never depends on whether the recipient is registered."""
    message_id = uuid.uuid4()
    if tenant_id is not None:
        payload = {**await _branding(session, tenant_id), **payload}
    preferred = (
        select(User.preferred_language)
        .where(User.email == recipient, User.preferred_language.in_(LANGUAGES))
        .scalar_subquery()
    )
    await session.execute(
        insert(EmailMessage).values(
            id=message_id,
            tenant_id=tenant_id,
            recipient=recipient,
            template=template,
            language=language if language is not None else func.coalesce(preferred, DEFAULT_LANGUAGE),
            payload=payload,
            status="queued",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )
    after_commit(session, email_queued.set)
    return message_id


async def _branding(session: AsyncSession, tenant_id: UUID) -> dict[str, str]:
    """The sender and product names the tenant chose for its emails (rendering uses them)."""
    row = (
        await session.execute(
            select(TenantDirectoryEntry.email_sender_name, TenantDirectoryEntry.email_product_name).where(
                TenantDirectoryEntry.tenant_id == tenant_id
            )
        )
    ).one_or_none()
    if row is None:
        return {}
    return {name: value for name, value in (("sender_name", row[0]), ("product_name", row[1])) if value}


async def claim_due_emails(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[EmailMessage]:
    """Claims the oldest due messages and counts the attempt: their next attempt moves to
    lease_until, so no other sender takes them while this one sends, and a sender that
    dies mid-way leaves them to be tried again once the lease ends. SKIP LOCKED lets
    several replicas claim side by side without waiting for each other."""
    due = (
        select(EmailMessage.id)
        .where(EmailMessage.status == "queued", EmailMessage.next_attempt_at <= now)
        .order_by(EmailMessage.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = await session.execute(
        update(EmailMessage)
        .where(EmailMessage.id.in_(due))
        .values(attempts=EmailMessage.attempts + 1, next_attempt_at=lease_until)
        .returning(EmailMessage)
    )
    return sorted(rows.scalars(), key=lambda message: message.created_at)


async def mark_sent(session: AsyncSession, message_id: UUID, *, language: str, now: datetime) -> None:
    """Sent: the payload (links, tokens) goes; the log keeps who, what and when."""
    await session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message_id)
        .values(status="sent", sent_at=now, payload=None, last_error=None, next_attempt_at=None, language=language)
    )


async def mark_failed(session: AsyncSession, message_id: UUID, *, error: str) -> None:
    """Failed for good: no more attempts, and the payload goes."""
    await session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message_id)
        .values(status="failed", payload=None, last_error=error, next_attempt_at=None)
    )


async def schedule_retry(session: AsyncSession, message_id: UUID, *, error: str, next_attempt_at: datetime) -> None:
    await session.execute(
        update(EmailMessage)
        .where(EmailMessage.id == message_id)
        .values(last_error=error, next_attempt_at=next_attempt_at)
    )


async def list_emails(
    session: AsyncSession, *, tenant_id: UUID | None, before: tuple[datetime, UUID] | None, limit: int
) -> list[EmailMessage]:
    """The delivery log, newest first: one tenant's, or (tenant_id None) everyone's."""
    query = select(EmailMessage)
    if tenant_id is not None:
        query = query.where(EmailMessage.tenant_id == tenant_id)
    if before:
        query = query.where(tuple_(EmailMessage.created_at, EmailMessage.id) < tuple_(*before))
    rows = await session.execute(query.order_by(EmailMessage.created_at.desc(), EmailMessage.id.desc()).limit(limit))
    return list(rows.scalars())
