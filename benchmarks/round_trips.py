"""Round trips to PostgreSQL, counted at the asyncpg connection: deterministic, for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

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


@contextmanager
def counting_round_trips() -> Iterator[list[str]]:
    """Within the block, each round trip appends its kind to the list yielded."""
    sent: list[str] = []
    originals: list[tuple[type, str, Any]] = []

    def count(owner: type, name: str, label: str, *, only_without_arguments: bool = False) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original))

        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not only_without_arguments or len(args) <= 1:
                sent.append(label)
            return await original(self, *args, **kwargs)

        setattr(owner, name, counted)

    for owner, name in _ONE_ROUND_TRIP:
        count(owner, name, name)
    count(asyncpg.Connection, "execute", "simple query", only_without_arguments=True)
    try:
        yield sent
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


async def refresh_round_trips(database_url: str, refresh_token: str) -> tuple[list[str], str]:
    """The round trips of one refresh in auth's service layer, on a warm
    connection as a busy server has, and the access token it issued."""
    # Imported here: the counting above needs nothing of Tenantry.
    from datetime import timedelta

    from kit.db import Database
    from kit.outbox import Outbox
    from kit.revocations import RevokedSessions
    from kit.settings import asyncpg_url
    from services.auth.models import DB_ROLE, outbox
    from services.auth.service.passwords import PasswordHasher
    from services.auth.service.sessions import SessionService, TokenPolicy
    from services.auth.service.signing_keys import SigningKeys

    # One pooled connection, so the counted refresh finds its statement prepared by the first.
    database = Database(asyncpg_url(database_url), role=DB_ROLE, pool_size=1)
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
        first = await sessions.refresh(database, refresh_token=refresh_token)
        with counting_round_trips() as sent:
            second = await sessions.refresh(database, refresh_token=first.refresh_token)
        return sent, second.access_token
    finally:
        await database.dispose()
