"""tenantry-client's audit outbox: events written in the application's transaction,
delivered to each tenant's trail once, kept while the audit service is away."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from tenantry.audit.v1 import audit_pb2
from tenantry.auth.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc
from tenantry_client.audit import ApplicationAuditClient, AuditClient, AuditEvent, api_key_per_tenant, every_tenant
from tenantry_client.credentials import internal_token
from tenantry_client.outbox import AuditOutbox, audit_outbox_table, create_audit_outbox_sql

from kit.settings import asyncpg_url
from tests.stack import INTERNAL_API_TOKEN, Stack, Tenant, bearer

CREDENTIALS = every_tenant(internal_token(INTERNAL_API_TOKEN))


@pytest.fixture(scope="module")
def tenants(stack: Stack) -> tuple[Tenant, Tenant]:
    return stack.create_tenant("outbox-a"), stack.create_tenant("outbox-b")


@asynccontextmanager
async def application_database(stack: Stack) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], AuditOutbox]]:
    schema = f"app_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(asyncpg_url(stack.database_url))
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        for statement in create_audit_outbox_sql(schema):
            await connection.exec_driver_sql(statement)
    try:
        yield async_sessionmaker(engine), AuditOutbox(audit_outbox_table(MetaData(), schema=schema))
    finally:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        await engine.dispose()


def trail(stack: Stack, tenant: Tenant, action: str) -> list[str]:
    return sorted(event.resource_id for event in stack.audit_events(tenant.owner_token, action=action))


def test_events_wait_for_the_audit_service_and_reach_each_tenants_trail_once(
    stack: Stack, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    action = f"orders.placed{uuid.uuid4().hex[:6]}"

    async def run() -> None:
        async with application_database(stack) as (sessions, outbox):
            async with sessions() as session, session.begin():
                for number in range(3):
                    await outbox.record(
                        session,
                        action=action,
                        resource_type="order",
                        resource_id=f"a-{number}",
                        tenant_id=uuid.UUID(a.id),
                    )
                await outbox.record(
                    session, action=action, resource_type="order", resource_id="b-0", tenant_id=uuid.UUID(b.id)
                )
            async with sessions() as session, session.begin():
                await outbox.record(
                    session,
                    action=action,
                    resource_type="order",
                    resource_id="a-rolled-back",
                    tenant_id=uuid.UUID(a.id),
                )
                await session.rollback()

            away = AuditClient("127.0.0.1:1", credentials=CREDENTIALS)
            with pytest.raises(grpc.aio.AioRpcError):
                await outbox.deliver_batch(sessions, away)
            await away.close()
            async with sessions() as session:
                assert await session.scalar(select(func.count()).select_from(outbox.table)) == 4

            audit = AuditClient(stack.processes["audit"].address, credentials=CREDENTIALS)
            try:
                assert await outbox.deliver_batch(sessions, audit) == 4
                assert await outbox.deliver_batch(sessions, audit) == 0
            finally:
                await audit.close()
            async with sessions() as session:
                assert await session.scalar(select(func.count()).select_from(outbox.table)) == 0

    asyncio.run(run())
    assert trail(stack, a, action) == ["a-0", "a-1", "a-2"]
    assert trail(stack, b, action) == ["b-0"]


def test_a_batch_sent_again_stores_nothing_twice(stack: Stack, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    action = f"orders.shipped{uuid.uuid4().hex[:6]}"
    events = [AuditEvent(action, "order", f"o-{n}", uuid.UUID(a.id), details={"n": n}) for n in range(3)]

    async def run() -> tuple[int, int]:
        audit = AuditClient(stack.processes["audit"].address, credentials=CREDENTIALS)
        try:
            return await audit.append(uuid.UUID(a.id), events), await audit.append(uuid.UUID(a.id), events)
        finally:
            await audit.close()

    assert asyncio.run(run()) == (3, 0)
    assert trail(stack, a, action) == ["o-0", "o-1", "o-2"]


def test_a_batch_mixing_tenants_is_refused_before_sending(stack: Stack, tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants

    async def run() -> None:
        audit = AuditClient("127.0.0.1:1", credentials=CREDENTIALS)
        try:
            with pytest.raises(ValueError, match="its tenant"):
                await audit.append(uuid.UUID(a.id), [AuditEvent("x.y", "order", "1", uuid.UUID(b.id))])
        finally:
            await audit.close()

    asyncio.run(run())


def test_the_relay_delivers_what_commits_without_waiting_for_its_poll(
    stack: Stack, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    action = f"orders.paid{uuid.uuid4().hex[:6]}"

    async def run() -> None:
        async with application_database(stack) as (sessions, outbox):
            audit = AuditClient(stack.processes["audit"].address, credentials=CREDENTIALS)
            # A long poll: only the commit's wake-up can deliver within the test.
            relay = asyncio.create_task(outbox.relay(sessions, audit, poll_interval=60))
            try:
                await asyncio.sleep(0.3)
                async with sessions() as session, session.begin():
                    await outbox.record(
                        session, action=action, resource_type="order", resource_id="paid", tenant_id=uuid.UUID(a.id)
                    )
                for _ in range(100):
                    async with sessions() as session:
                        if await session.scalar(select(func.count()).select_from(outbox.table)) == 0:
                            return
                    await asyncio.sleep(0.05)
                raise AssertionError("the relay did not deliver within 5 s of the commit")
            finally:
                relay.cancel()
                await asyncio.gather(relay, return_exceptions=True)
                await audit.close()

    asyncio.run(run())
    assert trail(stack, a, action) == ["paid"]


def test_through_the_public_ingest_each_tenant_uses_its_own_key_and_one_without_waits(
    stack: Stack, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    keys = api_keys_service_pb2_grpc.ApiKeyServiceStub(stack.channels["auth"])
    key = keys.CreateApiKey(
        api_keys_service_pb2.CreateApiKeyRequest(name="audit-relay", permissions=["audit.write"]),
        metadata=bearer(a.owner_token),
        timeout=10,
    ).secret
    action = f"orders.refunded{uuid.uuid4().hex[:6]}"

    async def run() -> None:
        async with application_database(stack) as (sessions, outbox):
            async with sessions() as session, session.begin():
                # B's event first: the oldest, and B has no key here.
                await outbox.record(
                    session, action=action, resource_type="order", resource_id="b", tenant_id=uuid.UUID(b.id)
                )
                await outbox.record(
                    session,
                    action=action,
                    resource_type="order",
                    resource_id="a",
                    tenant_id=uuid.UUID(a.id),
                    user_id=uuid.UUID(int=7),
                    category="data",
                    outcome="success",
                )
            audit = ApplicationAuditClient(
                stack.processes["audit"].address, credentials=api_key_per_tenant({uuid.UUID(a.id): key})
            )
            try:
                assert await outbox.deliver_batch(sessions, audit) == 1
                # B is held back now, so the next pass finds nothing to do rather than failing again.
                assert await outbox.deliver_batch(sessions, audit) == 0
            finally:
                await audit.close()
            async with sessions() as session:
                left = (await session.execute(select(outbox.table.c.resource_id))).scalars().all()
            assert left == ["b"]

    asyncio.run(run())
    (event,) = stack.audit_events(a.owner_token, action=action)
    assert event.resource_id == "a" and event.actor_id == str(uuid.UUID(int=7))
    assert event.category == audit_pb2.AUDIT_CATEGORY_DATA and event.outcome == audit_pb2.AUDIT_OUTCOME_SUCCESS
    assert event.recorded_by_type == audit_pb2.AUDIT_ACTOR_TYPE_API_KEY
    assert stack.audit_events(b.owner_token, action=action) == []
