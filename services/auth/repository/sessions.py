"""Sessions, refresh tokens and the revocations every service follows. Sessions
and refresh tokens are guarded by tenant, or by subject during login and refresh."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, DateTime, and_, cast, delete, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import RefreshToken, Session, SessionRevocation, TenantDirectoryEntry

REVOCATION_CHANNEL = "tenantry_session_revoked"


async def insert_session(
    session: AsyncSession,
    *,
    user_id: UUID,
    tenant_id: UUID | None,
    now: datetime,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> UUID:
    session_id = uuid.uuid4()
    await session.execute(
        insert(Session).values(
            id=session_id,
            user_id=user_id,
            tenant_id=tenant_id,
            created_at=now,
            ip_address=ip_address,
            user_agent=user_agent,
        )
    )
    return session_id


@dataclass(frozen=True)
class SessionView:
    id: UUID
    tenant_id: UUID | None
    tenant_slug: str | None
    created_at: datetime
    last_used_at: datetime | None
    ip_address: str | None
    user_agent: str | None


async def live_sessions_of_user(session: AsyncSession, user_id: UUID) -> list[SessionView]:
    """The user's sessions not yet revoked, newest first (needs the subject bound)."""
    rows = await session.execute(
        select(
            Session.id,
            Session.tenant_id,
            TenantDirectoryEntry.slug,
            Session.created_at,
            Session.last_refreshed_at,
            Session.ip_address,
            Session.user_agent,
        )
        .outerjoin(TenantDirectoryEntry, TenantDirectoryEntry.tenant_id == Session.tenant_id)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .order_by(Session.created_at.desc())
    )
    return [
        SessionView(row[0], row[1], row[2], row[3], row[4], str(row[5]) if row[5] else None, row[6]) for row in rows
    ]


async def insert_refresh_token(
    session: AsyncSession,
    *,
    token_hash: bytes,
    session_id: UUID,
    user_id: UUID,
    tenant_id: UUID | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    await session.execute(
        insert(RefreshToken).values(
            token_hash=token_hash,
            session_id=session_id,
            user_id=user_id,
            tenant_id=tenant_id,
            created_at=now,
            expires_at=expires_at,
        )
    )


@dataclass(frozen=True)
class RedeemedToken:
    session_id: UUID
    user_id: UUID
    tenant_id: UUID | None


async def redeem_refresh_token(session: AsyncSession, token_hash: bytes, now: datetime) -> RedeemedToken | None:
    """Marks an unused, unexpired token of a live session used, atomically:
    of two concurrent refreshes with one token, exactly one wins."""
    row = (
        await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.expires_at > now,
                RefreshToken.session_id.in_(select(Session.id).where(Session.revoked_at.is_(None))),
            )
            .values(used_at=now)
            .returning(RefreshToken.session_id, RefreshToken.user_id, RefreshToken.tenant_id)
        )
    ).one_or_none()
    if row is None:
        return None
    await session.execute(update(Session).where(Session.id == row[0]).values(last_refreshed_at=now))
    return RedeemedToken(*row)


async def find_refresh_token(session: AsyncSession, token_hash: bytes) -> RefreshToken | None:
    return await session.get(RefreshToken, token_hash)


async def revoke_sessions(
    session: AsyncSession,
    *,
    reason: str,
    revoked_until: datetime,
    session_id: UUID | None = None,
    tenant_id: UUID | None = None,
    user_id: UUID | None = None,
    user_ids: list[UUID] | None = None,
    except_session_id: UUID | None = None,
) -> list[UUID]:
    """Revokes the live sessions matching every filter given (one session; a
    tenant's; a user's, in one tenant or all; several users' in a tenant),
    lists them for the revocation feed and notifies every auth replica on commit."""
    if session_id is None and tenant_id is None and user_id is None and user_ids is None:
        raise ValueError("revoke_sessions needs a session, tenant or user filter")
    filters: list[ColumnElement[bool]] = [Session.revoked_at.is_(None)]
    if session_id is not None:
        filters.append(Session.id == session_id)
    if tenant_id is not None:
        filters.append(Session.tenant_id == tenant_id)
    if user_id is not None:
        filters.append(Session.user_id == user_id)
    if user_ids is not None:
        filters.append(Session.user_id.in_(user_ids))
    if except_session_id is not None:
        filters.append(Session.id != except_session_id)
    condition = and_(*filters)
    revoked = (
        update(Session)
        .where(condition)
        .values(revoked_at=func.now(), revoke_reason=reason)
        .returning(Session.id)
        .cte("revoked")
    )
    listed = (
        insert(SessionRevocation)
        .from_select(
            ["session_id", "revoked_until"], select(revoked.c.id, cast(literal(revoked_until), DateTime(timezone=True)))
        )
        .on_conflict_do_update(index_elements=["session_id"], set_={"revoked_until": text("excluded.revoked_until")})
        .returning(SessionRevocation.session_id, SessionRevocation.revoked_until)
        .cte("listed")
    )
    rows = await session.execute(
        select(
            listed.c.session_id,
            func.pg_notify(
                REVOCATION_CHANNEL,
                func.concat(listed.c.session_id, " ", func.extract("epoch", listed.c.revoked_until)),
            ),
        )
    )
    return [row[0] for row in rows]


async def prune_revocations(session: AsyncSession, now: datetime) -> int:
    """Forgets revocations whose access tokens have all expired."""
    result = await session.execute(delete(SessionRevocation).where(SessionRevocation.revoked_until <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def live_revocations(session: AsyncSession, now: datetime) -> list[tuple[UUID, datetime]]:
    rows = await session.execute(
        select(SessionRevocation.session_id, SessionRevocation.revoked_until).where(
            SessionRevocation.revoked_until > now
        )
    )
    return [(row[0], row[1]) for row in rows]
