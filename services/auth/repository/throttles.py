"""Attempt counters under hashed keys, shared by every auth replica."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import Throttle


async def recorded(session: AsyncSession, key: str) -> tuple[bool, datetime | None]:
    """Whether the key has attempts on record, and until when it is blocked (None: it is not)."""
    row = (await session.execute(select(Throttle.blocked_until).where(Throttle.key == key))).one_or_none()
    return (True, row[0]) if row is not None else (False, None)


async def count_hit(session: AsyncSession, key: str, *, now: datetime, window_start: datetime) -> int:
    """Counts one attempt in the window that began after window_start (an
    older window starts afresh); returns the attempts in the window."""
    fresh = Throttle.window_started_at < window_start
    statement = (
        insert(Throttle)
        .values(key=key, hits=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=["key"],
            set_={
                "hits": case((fresh, 1), else_=Throttle.hits + 1),
                "window_started_at": case((fresh, now), else_=Throttle.window_started_at),
            },
        )
        .returning(Throttle.hits)
    )
    return int((await session.execute(statement)).scalar_one())


async def block(session: AsyncSession, key: str, until: datetime) -> None:
    await session.execute(update(Throttle).where(Throttle.key == key).values(blocked_until=until))


async def clear(session: AsyncSession, key: str) -> None:
    await session.execute(delete(Throttle).where(Throttle.key == key))
