"""Auth's own revoked-session list fails closed too: when its listener hears nothing
(a silent or unreachable database), other replicas' revocations may be missed, so the
list is trusted for the staleness bound, then refused, and WatchRevocations ends
rather than heartbeat a list its replica no longer trusts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from kit.errors import Unavailable
from kit.revocations import RevokedSessions, revocation_events
from services.auth.models import DB_ROLE
from services.auth.service import revocation_feed
from services.auth.service.revocation_feed import RevocationFeed
from tests.postgres_proxy import listening_behind_proxy
from tests.stack import until

STALENESS_SECONDS = 0.5


def test_a_silent_listener_makes_the_list_refused_after_the_bound_until_it_listens_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revocation_feed, "SILENCE_LIMIT_SECONDS", 0.5)

    async def scenario() -> tuple[bool, bool, bool, bool]:
        revoked = RevokedSessions(max_staleness=STALENESS_SECONDS)
        async with listening_behind_proxy(
            database_url, DB_ROLE, lambda url, database: RevocationFeed(database, url, revoked), RevocationFeed.run
        ) as (_feed, _database, proxy):
            current_at_first = await until(revoked.is_current, 10)
            proxy.answering.clear()  # the database says nothing to the listener
            # Silence limit, then the staleness bound, with a ping interval of margin.
            refused = await until(lambda: not revoked.is_current(), 0.5 + STALENESS_SECONDS + 1.5)
            with pytest.raises(Unavailable):
                revoked.is_revoked(uuid.uuid4())
            proxy.answering.set()
            current_again = await until(revoked.is_current, 10)
            return current_at_first, refused, current_again, not revoked.is_revoked(uuid.uuid4())

    current_at_first, refused, current_again, answers_again = asyncio.run(scenario())
    assert current_at_first
    assert refused
    assert current_again
    assert answers_again


def test_the_revocation_stream_ends_once_its_list_is_no_longer_current() -> None:
    async def scenario() -> list[str]:
        revoked = RevokedSessions(max_staleness=0.1)
        revoked.revoke(uuid.uuid4(), datetime.now(UTC) + timedelta(minutes=15))
        revoked.mark_complete()
        seen: list[str] = []
        events = revocation_events(revoked)
        with pytest.raises(Unavailable, match="not current"):
            async for event in events:
                seen.append(event.WhichOneof("event") or "")
                if event.HasField("heartbeat"):
                    revoked.mark_source_lost()  # the listener has gone quiet
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert seen == ["revoked", "snapshot_complete", "heartbeat"]
