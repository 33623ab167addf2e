"""Invitations, guarded by tenant. Tokens are stored only as hashes."""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import Invitation, TenantDirectoryEntry

# Neither accepted nor revoked: its token still works until it expires, and a
# resend revives it after.
OPEN = (Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))


async def insert_invitation(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    email: str,
    role: str,
    token_hash: bytes,
    invited_by: UUID | None,
    now: datetime,
    expires_at: datetime,
) -> Invitation:
    row = (
        await session.execute(
            insert(Invitation)
            .values(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                email=email,
                role=role,
                token_hash=token_hash,
                invited_by=invited_by,
                created_at=now,
                expires_at=expires_at,
            )
            .returning(Invitation)
        )
    ).scalar_one()
    return row


async def revoke_open_invitations(session: AsyncSession, tenant_id: UUID, email: str, now: datetime) -> list[UUID]:
    rows = await session.execute(
        update(Invitation)
        .where(Invitation.tenant_id == tenant_id, Invitation.email == email, *OPEN)
        .values(revoked_at=now)
        .returning(Invitation.id)
    )
    return list(rows.scalars())


async def find_open_invitation(session: AsyncSession, tenant_id: UUID, email: str) -> Invitation | None:
    return (
        await session.execute(
            select(Invitation).where(Invitation.tenant_id == tenant_id, Invitation.email == email, *OPEN)
        )
    ).scalar_one_or_none()


async def open_invitations_to(session: AsyncSession, email: str, now: datetime) -> list[tuple[Invitation, str]]:
    """Open, unexpired invitations sent to email, in any tenant, with the
    tenant's slug. Binds the email for row-level security: call it only for a
    person who proved control of that email."""
    await session.execute(text("SELECT set_config('app.subject_email', :email, true)"), {"email": email})
    rows = await session.execute(
        select(Invitation, TenantDirectoryEntry.slug)
        .join(TenantDirectoryEntry, TenantDirectoryEntry.tenant_id == Invitation.tenant_id)
        .where(Invitation.email == email, Invitation.expires_at > now, *OPEN)
        .order_by(TenantDirectoryEntry.slug)
    )
    return [(row[0], row[1]) for row in rows]


async def find_invitation_by_token(session: AsyncSession, token_hash: bytes) -> Invitation | None:
    return (await session.execute(select(Invitation).where(Invitation.token_hash == token_hash))).scalar_one_or_none()


async def find_invitation(
    session: AsyncSession, tenant_id: UUID, invitation_id: UUID, *, for_update: bool = False
) -> Invitation | None:
    query = select(Invitation).where(Invitation.tenant_id == tenant_id, Invitation.id == invitation_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def redeem_invitation(
    session: AsyncSession, token_hash: bytes, *, user_id: UUID, now: datetime
) -> Invitation | None:
    """Marks an open, unexpired invitation accepted, atomically: of two
    concurrent acceptances of one token, exactly one wins."""
    return (
        await session.execute(
            update(Invitation)
            .where(Invitation.token_hash == token_hash, Invitation.expires_at > now, *OPEN)
            .values(accepted_at=now, accepted_by=user_id)
            .returning(Invitation)
        )
    ).scalar_one_or_none()


async def renew_invitation(
    session: AsyncSession, invitation_id: UUID, *, token_hash: bytes, expires_at: datetime
) -> Invitation:
    return (
        await session.execute(
            update(Invitation)
            .where(Invitation.id == invitation_id)
            .values(token_hash=token_hash, expires_at=expires_at)
            .returning(Invitation)
        )
    ).scalar_one()


async def revoke_invitation(session: AsyncSession, invitation_id: UUID, now: datetime) -> Invitation:
    return (
        await session.execute(
            update(Invitation).where(Invitation.id == invitation_id).values(revoked_at=now).returning(Invitation)
        )
    ).scalar_one()


async def list_invitations(
    session: AsyncSession, tenant_id: UUID, *, before: tuple[datetime, UUID] | None, limit: int
) -> list[Invitation]:
    """Newest first; the cursor is the last row's (created_at, id)."""
    query = select(Invitation).where(Invitation.tenant_id == tenant_id)
    if before:
        query = query.where(tuple_(Invitation.created_at, Invitation.id) < tuple_(*before))
    rows = await session.execute(query.order_by(Invitation.created_at.desc(), Invitation.id.desc()).limit(limit))
    return list(rows.scalars())


async def count_open_with_role(
    session: AsyncSession, tenant_id: UUID, role: str, *, excluding: UUID | None = None
) -> int:
    query = select(func.count()).where(Invitation.tenant_id == tenant_id, Invitation.role == role, *OPEN)
    if excluding is not None:
        query = query.where(Invitation.id != excluding)
    return int((await session.execute(query)).scalar_one())
