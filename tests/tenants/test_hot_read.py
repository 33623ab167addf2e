"""The caller's tenant: one PostgreSQL round trip when read, none when cached,
row-level security intact, and every replica's cache told of every change."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kit.context import Principal, RequestContext, enter_request, leave_request
from kit.db import PLATFORM_SCOPE, Database
from kit.outbox import Outbox
from kit.settings import asyncpg_url
from services.tenants import repository, tenant_cache
from services.tenants.models import DB_ROLE, Tenant, outbox
from services.tenants.service import TenantRegistry
from services.tenants.tenant_cache import STALENESS_BOUND_SECONDS, TenantCache
from tests.postgres_proxy import RoundTripCounter, listening_behind_proxy, proxied_url
from tests.stack import until


@asynccontextmanager
async def counted_database(database_url: str) -> AsyncIterator[tuple[Database, RoundTripCounter]]:
    async with proxied_url(database_url) as (url, counter):
        database = Database(url, role=DB_ROLE, pool_size=1)
        try:
            yield database, counter
        finally:
            await database.dispose()


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


@asynccontextmanager
async def cache_behind_proxy(database_url: str) -> AsyncIterator[tuple[TenantCache, Database, RoundTripCounter]]:
    async with listening_behind_proxy(
        database_url, DB_ROLE, lambda url, _database: TenantCache(url, role=DB_ROLE), TenantCache.follow_changes
    ) as (cache, database, proxy):
        await asyncio.wait_for(cache.listening.wait(), 5)
        yield cache, database, proxy


def test_late_answers_only_delay_trust_and_keep_the_listener_and_what_the_cache_holds(database_url: str) -> None:
    """Under a load that slows PostgreSQL's answers the cache distrusts itself for a while, then serves again
    from the same connection and rows: giving them up made every read go to the database."""

    async def scenario() -> tuple[bool, bool, bool, bool]:
        async with cache_behind_proxy(database_url) as (cache, database, proxy):
            tenant = await provisioned_tenant(database)
            await registry_with(database, cache).get_mine(principal_of(tenant))
            connection = cache._listener
            proxy.answering.clear()
            distrusted = await until(lambda: not cache.is_trusted(), STALENESS_BOUND_SECONDS + 0.5)
            await asyncio.sleep(STALENESS_BOUND_SECONDS)  # answers held back for twice the bound
            proxy.answering.set()
            trusted_again = await until(cache.is_trusted, 2)
            return distrusted, trusted_again, cache._listener is connection, tenant.id in cache._tenants

    distrusted, trusted_again, same_connection, still_cached = asyncio.run(scenario())
    assert distrusted
    assert trusted_again
    assert same_connection
    assert still_cached


def test_a_listener_that_answers_nothing_is_replaced_and_the_cache_starts_empty(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tenant_cache, "DEAD_LISTENER_SECONDS", 1.0)

    async def scenario() -> tuple[bool, bool, bool]:
        async with cache_behind_proxy(database_url) as (cache, database, proxy):
            tenant = await provisioned_tenant(database)
            await registry_with(database, cache).get_mine(principal_of(tenant))
            connection = cache._listener
            assert connection is not None
            proxy.answering.clear()  # half-open: the server says nothing at all
            given_up = await until(connection.is_closed, 5)
            proxy.answering.set()
            trusted_again = await until(cache.is_trusted, 10)
            replaced = given_up and cache._listener is not connection
            return replaced, trusted_again, tenant.id in cache._tenants

    replaced, trusted_again, still_cached = asyncio.run(scenario())
    assert replaced
    assert trusted_again
    assert not still_cached
