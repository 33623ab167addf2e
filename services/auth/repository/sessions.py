"""Sessions, refresh tokens and the revocations every service follows. Sessions
and refresh tokens are guarded by tenant, or by subject during login and refresh."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, DateTime, and_, cast, delete, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import Database
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
    rows = await session.execute(select(listed.c.session_id, _notify(listed)))
    return [row[0] for row in rows]


def _notify(listed: Any) -> Any:
    """Tells every auth replica's feed of each revocation listed, on commit."""
    return func.pg_notify(
        REVOCATION_CHANNEL, func.concat(listed.c.session_id, " ", func.extract("epoch", listed.c.revoked_until))
    )


async def list_revocations(session: AsyncSession, session_ids: list[UUID], revoked_until: datetime) -> None:
    """Lists sids that are no rows of auth.sessions (a service account's
    credentials) for the revocation feed, and notifies every auth replica on commit."""
    if not session_ids:
        return
    listed = (
        insert(SessionRevocation)
        .values([{"session_id": sid, "revoked_until": revoked_until} for sid in session_ids])
        .on_conflict_do_update(index_elements=["session_id"], set_={"revoked_until": text("excluded.revoked_until")})
        .returning(SessionRevocation.session_id, SessionRevocation.revoked_until)
        .cte("listed")
    )
    await session.execute(select(_notify(listed)))


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


# Refresh with rotation, in three round trips -----------------------------------------------------------------------

# The rotation as one statement: the presented token marked used (only if
# unused, unexpired and of a live session, so of two concurrent refreshes one
# wins), its session touched, the next token of the family stored, the audit
# event written to the outbox, and what the new access token needs of the
# membership as it is now: role, status, whether the tenant is active, and a
# custom role's permissions. No row comes back when the token was not redeemed.
_ROTATE = """
WITH redeemed AS (
    UPDATE auth.refresh_tokens SET used_at = $3
    WHERE token_hash = $1 AND user_id = $2 AND used_at IS NULL AND expires_at > $3
      AND session_id IN (SELECT id FROM auth.sessions WHERE revoked_at IS NULL)
    RETURNING session_id, user_id, tenant_id
), touched AS (
    UPDATE auth.sessions SET last_refreshed_at = $3 WHERE id = (SELECT session_id FROM redeemed)
), issued AS (
    INSERT INTO auth.refresh_tokens (token_hash, session_id, user_id, tenant_id, created_at, expires_at)
    SELECT $4, session_id, user_id, tenant_id, $3, $5 FROM redeemed
), recorded AS (
    INSERT INTO auth.outbox (id, tenant_id, user_id, action, resource_type, resource_id, details,
                             ip_address, user_agent, request_id, created_at)
    SELECT $6, tenant_id, user_id, 'auth.token.refreshed', 'session', session_id::text, '{}'::jsonb,
           $7::inet, $8, $9, $3
    FROM redeemed
)
SELECT redeemed.session_id, redeemed.tenant_id, membership.role, membership.status, directory.is_active,
       custom_role.permissions
FROM redeemed
LEFT JOIN auth.memberships AS membership
       ON membership.tenant_id = redeemed.tenant_id AND membership.user_id = redeemed.user_id
LEFT JOIN auth.tenant_directory AS directory ON directory.tenant_id = redeemed.tenant_id
LEFT JOIN auth.roles AS custom_role ON custom_role.tenant_id = redeemed.tenant_id AND custom_role.name = membership.role
"""


@dataclass(frozen=True)
class RefreshEvent:
    """The audit event a refresh writes to the outbox; its tenant and session come from the token."""

    id: UUID
    ip_address: str | None
    user_agent: str | None
    request_id: str | None


@dataclass(frozen=True)
class Rotation:
    """A redeemed refresh token's session, and its membership as it is now (None where there is none)."""

    session_id: UUID
    tenant_id: UUID | None
    role: str | None
    status: str | None
    tenant_active: bool | None
    custom_permissions: tuple[str, ...] | None


@asynccontextmanager
async def refresh_transaction(database: Database, subject: UUID, token_hash: bytes) -> AsyncIterator[Any]:
    """A transaction bound for refreshing one token, on a pooled asyncpg connection.

    The first round trip opens the transaction and binds, transaction-local
    as every unit of work does, the subject written in the token and then
    the tenant of the token's session (found under the subject binding, so a
    token of someone else's binds nothing). These are separate statements of
    one simple-protocol message, which PostgreSQL runs in order: row-level
    security then applies to everything after, as it would after bind_scope.
    Both values are ours to format (a UUID, a SHA-256 digest in hex), never
    text from the caller. Commits when the block ends, rolls back on error."""
    bind = (
        f"BEGIN; SELECT set_config('app.subject_id', '{UUID(str(subject))}', true);"
        " SELECT set_config('app.tenant_id', coalesce((SELECT tenant_id::text FROM auth.refresh_tokens"
        f" WHERE token_hash = '\\x{bytes(token_hash).hex()}'::bytea), ''), true)"
    )
    async with database.single_statement() as connection:
        try:
            # Inside the try: a bind cut short (a cancelled call) may have begun the transaction,
            # and the pool's reset would not end one that SQLAlchemy did not begin.
            await connection.execute(bind)
            yield connection
        except BaseException:
            with suppress(Exception):
                await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")


async def rotate_refresh_token(
    connection: Any,
    *,
    token_hash: bytes,
    subject: UUID,
    next_token_hash: bytes,
    now: datetime,
    expires_at: datetime,
    event: RefreshEvent,
) -> Rotation | None:
    """Redeems the token and stores its successor in one statement (see _ROTATE); None if it was not redeemed."""
    row = await connection.fetchrow(
        _ROTATE,
        token_hash,
        subject,
        now,
        next_token_hash,
        expires_at,
        event.id,
        event.ip_address,
        event.user_agent,
        event.request_id,
    )
    if row is None:
        return None
    permissions = row[5]
    return Rotation(row[0], row[1], row[2], row[3], row[4], None if permissions is None else tuple(permissions))
