"""Round trips to PostgreSQL per refresh, counted at the asyncpg connection: deterministic, so a regression fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import jwt
import pytest
from asyncpg.prepared_stmt import PreparedStatement

from kit.db import Database
from kit.outbox import Outbox
from kit.revocations import RevokedSessions
from kit.settings import asyncpg_url
from services.auth.models import DB_ROLE, outbox
from services.auth.service.passwords import PasswordHasher
from services.auth.service.sessions import SessionService, TokenPolicy
from services.auth.service.signing_keys import SigningKeys
from tests.stack import Stack

# Every asyncpg call that sends one message and waits for its answer. execute()
# with arguments goes through _execute, so only its simple-protocol form counts.
_ONE_ROUND_TRIP = [
    (asyncpg.Connection, "_execute"),
    (asyncpg.Connection, "prepare"),
    (PreparedStatement, "fetch"),
    (PreparedStatement, "fetchrow"),
    (PreparedStatement, "fetchval"),
    (PreparedStatement, "executemany"),
]


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    sent: list[str] = []

    def counted(owner: type, name: str) -> None:
        original = getattr(owner, name)

        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(name)
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    for owner, name in _ONE_ROUND_TRIP:
        counted(owner, name)
    simple_query = asyncpg.Connection.execute

    async def execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:
            sent.append("simple query")
        return await simple_query(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "execute", execute)
    yield sent


def test_a_refresh_costs_three_round_trips_and_still_carries_the_grant(stack: Stack, round_trips: list[str]) -> None:
    tenant = stack.create_tenant("trips")

    async def refresh_twice() -> tuple[list[str], dict[str, Any]]:
        # One pooled connection, so the second refresh finds its statement prepared, as a busy server does.
        database = Database(asyncpg_url(stack.database_url), role=DB_ROLE, pool_size=1)
        try:
            keys = SigningKeys(database)
            await keys.load()
            sessions = SessionService(
                keys=keys,
                hasher=PasswordHasher(rounds=4, max_workers=1, max_queue=1),
                outbox=Outbox(outbox),
                revoked=RevokedSessions(),
                policy=TokenPolicy("issuer", "audience", timedelta(minutes=5), timedelta(days=1)),
            )
            first = await sessions.refresh(database, refresh_token=tenant.owner_refresh)
            round_trips.clear()
            second = await sessions.refresh(database, refresh_token=first.refresh_token)
            counted = list(round_trips)
            claims = jwt.decode(second.access_token, options={"verify_signature": False})
            return counted, claims
        finally:
            await database.dispose()

    counted, claims = asyncio.run(refresh_twice())
    # Open and bind; rotate; commit.
    assert counted == ["simple query", "_execute", "simple query"]
    assert claims["tid"] == tenant.id
    assert claims["roles"] == ["owner"]
    assert "app.*" in claims["perms"]
