"""tenantry-client's tenant binding: each transaction sees its caller's tenant's rows only,
under FORCE ROW LEVEL SECURITY, and no binding outlives its transaction on a pooled connection."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from tenantry_client.context import Principal, acting_as
from tenantry_client.rls import bind_tenant_per_transaction, tenant_transaction

from kit.settings import asyncpg_url
from tests.stack import Stack

TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def principal_of(tenant_id: uuid.UUID | None) -> Principal:
    return Principal(
        user_id=uuid.uuid4(),
        tenant_id=tenant_id,
        roles=frozenset(),
        permissions=frozenset(),
        session_id=uuid.uuid4(),
        token_id="t",
        expires_at=datetime.now(UTC),
    )


def test_each_transaction_sees_only_its_callers_tenant(stack: Stack) -> None:
    schema, role = f"rls_{uuid.uuid4().hex[:8]}", f"rls_app_{uuid.uuid4().hex[:8]}"
    a, b = uuid.uuid4(), uuid.uuid4()
    url = asyncpg_url(stack.database_url)

    async def run() -> None:
        owner = create_async_engine(url)
        async with owner.begin() as connection:
            for statement in [
                f"CREATE SCHEMA {schema}",
                f"CREATE ROLE {role} NOLOGIN",
                f"CREATE TABLE {schema}.notes (tenant_id uuid NOT NULL, body text NOT NULL)",
                f"ALTER TABLE {schema}.notes ENABLE ROW LEVEL SECURITY",
                f"ALTER TABLE {schema}.notes FORCE ROW LEVEL SECURITY",
                f"CREATE POLICY tenant ON {schema}.notes USING (tenant_id = {TENANT})"
                f" WITH CHECK (tenant_id = {TENANT})",
                f"GRANT USAGE ON SCHEMA {schema} TO {role}",
                f"GRANT SELECT, INSERT ON {schema}.notes TO {role}",
            ]:
                await connection.exec_driver_sql(statement)
        # One pooled connection: every transaction below reuses it.
        engine = create_async_engine(url, pool_size=1, max_overflow=0)
        event.listen(
            engine.sync_engine,
            "connect",
            lambda dbapi, _record: dbapi.run_async(lambda c: c.execute(f"SET ROLE {role}")),
        )
        sessions = async_sessionmaker(engine)
        bind_tenant_per_transaction(sessions)
        insert = text(f"INSERT INTO {schema}.notes VALUES (:tenant, :body)")
        count = text(f"SELECT count(*) FROM {schema}.notes")
        try:
            for tenant, body in ((a, "a1"), (a, "a2"), (b, "b1")):
                with acting_as(principal_of(tenant)):
                    async with sessions() as session, session.begin():
                        await session.execute(insert, {"tenant": tenant, "body": body})

            async def seen(tenant: uuid.UUID | None) -> int:
                with acting_as(principal_of(tenant) if tenant else None):
                    async with sessions() as session, session.begin():
                        return int(await session.scalar(count) or 0)

            assert [await seen(a), await seen(b), await seen(None)] == [2, 1, 0]
            # Writing another tenant's row is refused by the policy itself.
            with acting_as(principal_of(a)):
                async with sessions() as session:
                    with pytest.raises(DBAPIError, match="row-level security"):
                        async with session.begin():
                            await session.execute(insert, {"tenant": b, "body": "forged"})
            async with tenant_transaction(sessions, b) as session:
                assert await session.scalar(count) == 1
            # The binding ended with its transaction: the same connection, no tenant, sees nothing.
            async with sessions() as session, session.begin():
                assert await session.scalar(count) == 0
        finally:
            await engine.dispose()
            async with owner.begin() as connection:
                await connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
                await connection.exec_driver_sql(f"DROP ROLE {role}")
            await owner.dispose()

    asyncio.run(run())
