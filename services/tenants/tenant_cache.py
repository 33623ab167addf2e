"""Each replica's copy of the tenants it serves, kept true by LISTEN/NOTIFY.

A tenant is read on every request of its users and changed a few times in its
life, so each replica keeps the rows it has read. Every change is NOTIFYed in
the transaction that makes it (see repository.update_tenant); a listener
connection per replica evicts the tenant when that notification arrives, and
the writing replica evicts it itself once its transaction has committed.

The bound: a change reaches the writer's own replica before the writer's call
returns, and every other replica within STALENESS_BOUND_SECONDS. The listener
confirms its connection with a round trip every PING_SECONDS; PostgreSQL
delivers a listening session's notifications before it answers its next
query, so once a ping sent at t has been answered, every change committed
before t has been applied. The cache answers only while its listener
connection is open and its last answered ping was sent less than
STALENESS_BOUND_SECONDS ago; otherwise (listener down, database slow or shut
down, connection half-open) every read goes to the database. A late answer
keeps the connection and what the cache holds: the notifications it waited
behind have been applied by the time it arrives.

A read that misses runs concurrently with writers: it keeps its row only if
no notification arrived between the moment it started and the moment it
stores, so a row read before a change can never be stored after the change's
eviction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
from sqlalchemy.engine import make_url

from services.tenants.models import Tenant
from services.tenants.repository import TENANT_CHANGES_CHANNEL

log = logging.getLogger(__name__)

STALENESS_BOUND_SECONDS = 1.0
PING_SECONDS = 0.25
# A ping answered late only delays trust (is_trusted() counts from its sending);
# the connection is given up when a ping goes this long unanswered (half-open, or
# the server gone without a word). Giving it up on the first late answer, under a
# load that slows answers, emptied the cache and sent every read to the database.
DEAD_LISTENER_SECONDS = 10.0
RECONNECT_PAUSE_SECONDS = 0.25
# Far more tenants than a replica serves at once, at a few kilobytes each.
MAX_TENANTS = 10_000


class TenantCache:
    def __init__(self, dsn: str, *, role: str, max_tenants: int = MAX_TENANTS) -> None:
        self._dsn = make_url(dsn).set(drivername="postgresql").render_as_string(hide_password=False)
        self._role = role
        self._tenants: dict[UUID, Tenant] = {}
        self._max_tenants = max_tenants
        # Bumped by every eviction; a miss stores its row only if unchanged.
        self._evictions = 0
        # monotonic send time of the last ping the listener saw answered.
        self._confirmed_at = float("-inf")
        self._listener: asyncpg.Connection | None = None
        self.listening = asyncio.Event()

    def is_trusted(self) -> bool:
        # A listener connection seen closed (the server shut down, say) is
        # distrusted at once, not at the next ping.
        listener = self._listener
        return (
            listener is not None
            and not listener.is_closed()
            and time.monotonic() - self._confirmed_at < STALENESS_BOUND_SECONDS
        )

    async def get(self, tenant_id: UUID, load: Callable[[], Awaitable[Tenant | None]]) -> Tenant | None:
        """The tenant from the cache while it is trusted, else from load()."""
        if self.is_trusted():
            tenant = self._tenants.get(tenant_id)
            if tenant is not None:
                return tenant
        evictions_before = self._evictions
        tenant = await load()
        if tenant is not None and self._evictions == evictions_before and self.is_trusted():
            self._store(tenant_id, tenant)
        return tenant

    def evict(self, tenant_id: UUID) -> None:
        self._evictions += 1
        self._tenants.pop(tenant_id, None)

    def _store(self, tenant_id: UUID, tenant: Tenant) -> None:
        while len(self._tenants) >= self._max_tenants:
            del self._tenants[next(iter(self._tenants))]
        self._tenants[tenant_id] = tenant

    def _forget_everything(self) -> None:
        self._evictions += 1
        self._tenants.clear()

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.evict(UUID(payload))
        except ValueError:
            log.warning("malformed tenant change notification; forgetting every tenant")
            self._forget_everything()

    async def follow_changes(self) -> None:
        """Listens forever; the cache is trusted only while the listener answers."""
        failing = False
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=STALENESS_BOUND_SECONDS * 5)
                self._listener = connection
                await connection.execute(f'SET ROLE "{self._role}"')
                await connection.add_listener(TENANT_CHANGES_CHANNEL, self._on_notification)
                # Whatever changed while nobody listened is unknown: start empty.
                self._forget_everything()
                if failing:
                    log.info("tenant change listener listening again")
                    failing = False
                while True:
                    sent_at = time.monotonic()
                    await connection.execute("SELECT 1", timeout=DEAD_LISTENER_SECONDS)
                    self._confirmed_at = sent_at
                    self.listening.set()
                    await asyncio.sleep(PING_SECONDS)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self._confirmed_at = float("-inf")
                self.listening.clear()
                if not failing:
                    log.warning("tenant change listener reconnecting", extra={"reason": type(error).__name__})
                    failing = True
            finally:
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(RECONNECT_PAUSE_SECONDS)
