"""Feeds this replica's revoked-session list from PostgreSQL.

Every revocation is NOTIFYed in the transaction that makes it, so each auth
replica (or worker) hears of the others' logouts the moment they commit, and
passes them on to the services streaming WatchRevocations from it. While its
listener is down the list is trusted for REVOCATION_MAX_STALENESS_SECONDS,
then not at all until it listens again and has reloaded: revocation fails
closed here as in every other service.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import Database, after_commit
from kit.errors import Unavailable
from kit.revocations import RevokedSessions
from services.auth.repository import sessions as session_rows
from services.auth.repository.sessions import REVOCATION_CHANNEL

log = logging.getLogger(__name__)

PING_SECONDS = 0.5
# A listener whose ping goes this long unanswered is taken for dead (half-open, the
# server gone without a word), as a revocation stream that falls silent is.
SILENCE_LIMIT_SECONDS = 3.0


async def end_tokens_of(
    session: AsyncSession, revoked: RevokedSessions, credential_ids: list[UUID], until: datetime
) -> None:
    """Lists the credentials' tokens (service accounts' credentials, API keys: their tokens' sid) as revoked
    sessions until `until`, which the feed tells every service, and on commit refuses them here at once."""
    await session_rows.list_revocations(session, credential_ids, until)

    def publish() -> None:
        for credential_id in credential_ids:
            revoked.revoke(credential_id, until)

    after_commit(session, publish)


def plain_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class RevocationFeed:
    def __init__(self, database: Database, url: str, revoked: RevokedSessions) -> None:
        self._database = database
        self._dsn = plain_dsn(url)
        self._revoked = revoked
        self.ready = asyncio.Event()

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            session_id, epoch = payload.split(" ", 1)
            self._revoked.revoke(UUID(session_id), datetime.fromtimestamp(float(epoch), UTC))
        except ValueError:
            log.warning("malformed revocation notification ignored")

    async def load_live(self) -> None:
        async with self._database.unit_of_work(scope="") as session:
            for session_id, until in await session_rows.live_revocations(session, datetime.now(UTC)):
                self._revoked.revoke(session_id, until)
        # Complete and connected: the listener calls this after every reconnect.
        self._revoked.mark_complete()

    async def prune(self, interval: float = 3600.0) -> None:
        """Deletes expired revocations now and then, forever."""
        while True:
            try:
                async with self._database.unit_of_work(scope="") as session:
                    removed = await session_rows.prune_revocations(session, datetime.now(UTC))
                if removed:
                    log.info("expired revocations pruned", extra={"count": removed})
            except Exception:
                log.error("pruning revocations failed", exc_info=True)
            await asyncio.sleep(interval)

    async def run(self) -> None:
        """Listens forever; after any reconnect, reloads what it may have missed.

        Retries every 0.25 s, so it listens again as soon as the database is
        back; an outage is logged when it starts and when it ends.
        """
        failing = False
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._dsn)
                await connection.execute(f'SET ROLE "{self._database.role}"')
                await connection.add_listener(REVOCATION_CHANNEL, self._on_notification)
                await self.load_live()
                self.ready.set()
                if failing:
                    log.info("revocation listener listening again")
                    failing = False
                while not connection.is_closed():
                    await asyncio.sleep(PING_SECONDS)
                    await connection.execute("SELECT 1", timeout=SILENCE_LIMIT_SECONDS)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, Unavailable) as error:
                # Other replicas' revocations no longer reach this one: trusted for the staleness
                # bound, then refused until the listener is back and has reloaded.
                self._revoked.mark_source_lost()
                if not failing:
                    log.warning("revocation listener reconnecting", extra={"reason": type(error).__name__})
                    failing = True
            finally:
                if connection is not None and not connection.is_closed():
                    await connection.close()
            await asyncio.sleep(0.25)
