"""The caller's tenant: one PostgreSQL round trip when read, none when cached,
row-level security intact, and every replica's cache told of every change."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from kit.context import Principal, RequestContext, enter_request, leave_request
from kit.db import PLATFORM_SCOPE, Database
from kit.outbox import Outbox
from kit.settings import asyncpg_url
from services.tenants import repository
from services.tenants.models import DB_ROLE, Tenant, outbox
from services.tenants.service import TenantRegistry
from services.tenants.tenant_cache import STALENESS_BOUND_SECONDS, TenantCache

SSL_OR_GSS_REQUESTS = {80877103, 80877104}


class RoundTripCounter:
    """A loopback proxy in front of PostgreSQL counting the client's round trips:
    each Sync (extended protocol) or Query (simple protocol) message waits for
    the server's ReadyForQuery, whatever the driver."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.round_trips = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection(*self.upstream)
        back = asyncio.create_task(self._pipe(server_in, client_out))
        try:
            await self._count_client_messages(client_in, server_out)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            server_out.close()
            back.cancel()

    async def _count_client_messages(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        starting = True
        while True:
            if starting:
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                body = await reader.readexactly(length - 8)
                starting = code in SSL_OR_GSS_REQUESTS
                writer.write(head + body)
            else:
                head = await reader.readexactly(5)
                length = struct.unpack("!i", head[1:])[0]
                body = await reader.readexactly(length - 4)
                if head[:1] in (b"S", b"Q"):
                    self.round_trips += 1
                writer.write(head + body)
            await writer.drain()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@asynccontextmanager
async def counted_database(database_url: str) -> AsyncIterator[tuple[Database, RoundTripCounter]]:
    url = make_url(asyncpg_url(database_url))
    counter = RoundTripCounter(url.host or "127.0.0.1", url.port or 5432)
    port = await counter.start()
    proxied = url.set(host="127.0.0.1", port=port, query={**url.query, "ssl": "disable"})
    database = Database(proxied.render_as_string(hide_password=False), role=DB_ROLE, pool_size=1)
    try:
        yield database, counter
    finally:
        await database.dispose()
        assert counter.server is not None
        counter.server.close()


async def provisioned_tenant(database: Database) -> Tenant:
    now = datetime.now(UTC)
    values = {
        "name": "Hot Read",
        "slug": f"hot-{uuid.uuid4().hex[:10]}",
        "subscription_tier": "free",
        "settings": {"theme": "dark"},
        "owner_email": "owner@example.test",
    }
    async with database.unit_of_work(scope=PLATFORM_SCOPE) as session:
        pending = await repository.insert_pending(session, values, now)
        assert pending is not None
        tenant = await repository.mark_provisioned(session, pending.id, now)
        assert tenant is not None
        return tenant


def principal_of(tenant: Tenant) -> Principal:
    return Principal(
        user_id=uuid.uuid4(),
        tenant_id=tenant.id,
        roles=frozenset({"owner"}),
        session_id=uuid.uuid4(),
        token_id="t",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        permissions=frozenset({"tenant.update"}),
    )


class AgreeingAuth:
    """Auth's side of a suspension, which these tests take for granted."""

    async def SetTenantStatus(self, request: Any, **_options: Any) -> Any:
        return None


def registry_with(database: Database, cache: TenantCache) -> TenantRegistry:
    return TenantRegistry(database, Outbox(outbox), AgreeingAuth(), internal_metadata=(), cache=cache)  # type: ignore[arg-type]


async def as_caller(principal: Principal, call: Callable[[], Awaitable[Any]]) -> Any:
    token = enter_request(RequestContext(request_id="r", method="test", principal=principal))
    try:
        return await call()
    finally:
        leave_request(token)


async def until(condition: Callable[[], bool], within: float) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def test_reading_the_callers_tenant_costs_one_round_trip(database_url: str) -> None:
    async def scenario() -> tuple[int, str]:
        async with counted_database(database_url) as (database, counter):
            tenant = await provisioned_tenant(database)
            async with database.single_statement() as connection:
                # The first read prepares the statement; the driver keeps it.
                await repository.provisioned_tenant_in_scope(connection, tenant.id)
            before = counter.round_trips
            for _ in range(3):
                async with database.single_statement() as connection:
                    read = await repository.provisioned_tenant_in_scope(connection, tenant.id)
                    assert read is not None
            return counter.round_trips - before, read.name

    round_trips, name = asyncio.run(scenario())
    assert name == "Hot Read"
    assert round_trips == 3


def test_the_one_statement_read_leaves_no_tenant_bound_and_rls_still_filters(database_url: str) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        database = Database(asyncpg_url(database_url), role=DB_ROLE, pool_size=1)
        try:
            mine, other = await provisioned_tenant(database), await provisioned_tenant(database)
            async with database.single_statement() as connection:
                read = await repository.provisioned_tenant_in_scope(connection, mine.id)
                bound_after = await connection.fetchval("SELECT current_setting('app.tenant_id', true)")
                visible = await connection.fetchval("SELECT count(*) FROM tenants.tenants")
                # Binding one tenant by hand and asking for another still shows nothing.
                crossed = await connection.fetchval(
                    "SELECT count(*) FROM (SELECT set_config('app.tenant_id', $1, true)) AS bound,"
                    " tenants.tenants AS t WHERE t.id = $2",
                    str(mine.id),
                    other.id,
                )
            assert read is not None and read.id == mine.id
            return bound_after, visible, crossed
        finally:
            await database.dispose()

    bound_after, visible, crossed = asyncio.run(scenario())
    assert bound_after in (None, "")
    assert visible == 0
    assert crossed == 0


def test_a_cached_tenant_costs_no_round_trip(database_url: str) -> None:
    async def scenario() -> tuple[int, str]:
        async with counted_database(database_url) as (database, counter):
            cache = TenantCache(database_url, role=DB_ROLE)
            listener = asyncio.create_task(cache.follow_changes())
            try:
                await asyncio.wait_for(cache.listening.wait(), 5)
                tenant = await provisioned_tenant(database)
                registry = registry_with(database, cache)
                await registry.get_mine(principal_of(tenant))
                before = counter.round_trips
                for _ in range(5):
                    read = await registry.get_mine(principal_of(tenant))
                return counter.round_trips - before, read.name
            finally:
                listener.cancel()

    round_trips, name = asyncio.run(scenario())
    assert name == "Hot Read"
    assert round_trips == 0


def test_a_change_reaches_every_replica_within_the_bound_and_the_writer_before_it_returns(database_url: str) -> None:
    async def scenario() -> tuple[str, bool, str, bool]:
        database = Database(asyncpg_url(database_url), role=DB_ROLE, pool_size=2)
        writer_cache, other_cache = TenantCache(database_url, role=DB_ROLE), TenantCache(database_url, role=DB_ROLE)
        listeners = [asyncio.create_task(cache.follow_changes()) for cache in (writer_cache, other_cache)]
        try:
            for cache in (writer_cache, other_cache):
                await asyncio.wait_for(cache.listening.wait(), 5)
            tenant = await provisioned_tenant(database)
            writer, other = registry_with(database, writer_cache), registry_with(database, other_cache)
            caller = principal_of(tenant)
            for replica in (writer, other):
                assert (await replica.get_mine(caller)).name == "Hot Read"
            await as_caller(caller, lambda: writer.update_mine(caller, {"name": "Renamed"}))
            seen_by_writer = (await writer.get_mine(caller)).name
            evicted = await until(lambda: tenant.id not in other_cache._tenants, STALENESS_BOUND_SECONDS)
            seen_by_other = (await other.get_mine(caller)).name
            await writer.set_active(tenant.id, False)
            suspended = await until(lambda: tenant.id not in other_cache._tenants, STALENESS_BOUND_SECONDS)
            return seen_by_writer, evicted, seen_by_other, suspended and not (await other.get_mine(caller)).is_active
        finally:
            for listener in listeners:
                listener.cancel()
            await database.dispose()

    seen_by_writer, evicted, seen_by_other, suspension_seen = asyncio.run(scenario())
    assert seen_by_writer == "Renamed"
    assert evicted
    assert seen_by_other == "Renamed"
    assert suspension_seen


def test_without_a_live_listener_the_cache_is_not_trusted(database_url: str) -> None:
    async def scenario() -> tuple[str, str]:
        database = Database(asyncpg_url(database_url), role=DB_ROLE, pool_size=1)
        cache = TenantCache(database_url, role=DB_ROLE)  # never listening
        try:
            tenant = await provisioned_tenant(database)
            registry = registry_with(database, cache)
            caller = principal_of(tenant)
            first = (await registry.get_mine(caller)).name
            async with database.unit_of_work(scope=str(tenant.id)) as session:
                await repository.update_tenant(session, tenant.id, {"name": "Behind its back"}, datetime.now(UTC))
            return first, (await registry.get_mine(caller)).name
        finally:
            await database.dispose()

    first, second = asyncio.run(scenario())
    assert first == "Hot Read"
    assert second == "Behind its back"


def test_a_closed_listener_connection_is_distrusted_before_its_next_ping(database_url: str) -> None:
    async def scenario() -> tuple[bool, bool]:
        cache = TenantCache(asyncpg_url(database_url), role=DB_ROLE)
        listener = asyncio.create_task(cache.follow_changes())
        try:
            await asyncio.wait_for(cache.listening.wait(), 5)
            trusted_before = cache.is_trusted()
            assert cache._listener is not None
            cache._listener.terminate()  # as when the server goes away between two pings
            return trusted_before, cache.is_trusted()
        finally:
            listener.cancel()

    trusted_before, trusted_after = asyncio.run(scenario())
    assert trusted_before
    assert not trusted_after


def test_a_row_read_before_a_change_is_not_stored_after_its_eviction() -> None:
    cache = TenantCache("postgresql://unused/none", role=DB_ROLE)
    cache.is_trusted = lambda: True  # type: ignore[method-assign]  # as with a live listener
    tenant_id = uuid.uuid4()
    stale = Tenant(id=tenant_id, name="Before")

    async def load_racing_a_change() -> Tenant | None:
        cache.evict(tenant_id)  # the change's notification arrives mid-read
        return stale

    asyncio.run(cache.get(tenant_id, load_racing_a_change))
    assert tenant_id not in cache._tenants
