"""Refresh with rotation, reuse detection, logout and its reach across services."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import grpc
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import auth_service_pb2, members_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from kit.db import Database
from kit.settings import asyncpg_url
from services.auth.models import DB_ROLE
from services.auth.repository import sessions as session_rows
from tests.stack import OWNER_PASSWORD, Stack, bearer, eventually, rpc_error


def refresh(stack: Stack, token: str) -> auth_service_pb2.TokenResponse:
    return stack.auth.Refresh(auth_service_pb2.RefreshRequest(refresh_token=token), timeout=10)


def test_refresh_rotates_the_refresh_token(stack: Stack) -> None:
    tenant = stack.create_tenant()
    renewed = refresh(stack, tenant.owner_refresh)
    assert renewed.refresh_token != tenant.owner_refresh
    assert renewed.access_token != tenant.owner_token
    again = refresh(stack, renewed.refresh_token)
    assert again.access_token
    stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(again.access_token))


def test_reused_refresh_token_revokes_the_session(stack: Stack) -> None:
    tenant = stack.create_tenant()
    renewed = refresh(stack, tenant.owner_refresh)
    reuse = rpc_error(lambda: refresh(stack, tenant.owner_refresh))
    assert reuse.code() == grpc.StatusCode.UNAUTHENTICATED
    # The legitimate successor dies with the session, and so do its access tokens.
    assert rpc_error(lambda: refresh(stack, renewed.refresh_token)).code() == grpc.StatusCode.UNAUTHENTICATED
    eventually(
        lambda: stack.token_refused_by_tenants(renewed.access_token),
        timeout=1.0,
    )


def test_reuse_is_audited(stack: Stack) -> None:
    tenant = stack.create_tenant()
    refresh(stack, tenant.owner_refresh)
    rpc_error(lambda: refresh(stack, tenant.owner_refresh))
    operator_view = stack.login(tenant.owner_email, OWNER_PASSWORD).access_token
    events = eventually(lambda: stack.audit_events(operator_view, action="auth.refresh.reused"))
    assert len(events) == 1


def test_garbage_refresh_tokens_are_refused(stack: Stack) -> None:
    for token in ("garbage", "a.b", "0" * 32 + ".secret", "x" * 5000):
        assert rpc_error(lambda t=token: refresh(stack, t)).code() == grpc.StatusCode.UNAUTHENTICATED
    assert rpc_error(lambda: refresh(stack, "")).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_logout_ends_refresh_at_once_and_access_everywhere_within_a_second(stack: Stack) -> None:
    tenant = stack.create_tenant()
    token = tenant.owner_token
    stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(token))
    stack.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=bearer(token))
    logged_out = time.monotonic()
    assert rpc_error(lambda: refresh(stack, tenant.owner_refresh)).code() == grpc.StatusCode.UNAUTHENTICATED

    calls = {
        "auth": lambda: stack.members.ListMembers(members_service_pb2.ListMembersRequest(), metadata=bearer(token)),
        "tenants": lambda: stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(token)),
        "audit": lambda: stack.audit.ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(), metadata=bearer(token)
        ),
    }
    for name, call in calls.items():
        error = eventually(lambda c=call: rpc_error(c).code() == grpc.StatusCode.UNAUTHENTICATED, timeout=1.0)
        assert error, name
    assert time.monotonic() - logged_out < 1.5
    assert rpc_error(calls["tenants"]).details() == "session has ended"


def test_logout_ends_only_that_session(stack: Stack) -> None:
    tenant = stack.create_tenant()
    other = stack.login(tenant.owner_email, OWNER_PASSWORD)
    stack.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=bearer(tenant.owner_token))
    time.sleep(0.3)
    stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(other.access_token))
    assert refresh(stack, other.refresh_token).access_token


def test_a_revocation_reaches_a_service_that_reconnects(stack: Stack) -> None:
    """A service that missed the stream (auth restarting) still learns of a logout."""
    tenant = stack.create_tenant()
    stack.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=bearer(tenant.owner_token))
    with stack.service_stopped("tenants"):
        pass
    error = rpc_error(
        lambda: stack.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(tenant.owner_token))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_hundred_concurrent_logins_all_succeed(stack: Stack) -> None:
    tenant = stack.create_tenant()
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda _: stack.login(tenant.owner_email, OWNER_PASSWORD), range(100)))
    assert len({result.access_token for result in results}) == 100
    assert all(result.refresh_token for result in results)


def test_expired_revocations_are_pruned(stack: Stack) -> None:
    old, live = uuid.uuid4(), uuid.uuid4()
    stack.sql(
        "INSERT INTO auth.session_revocations VALUES "
        "(%s, now() - interval '1 minute'), (%s, now() + interval '1 hour')",
        (old, live),
    )

    async def prune() -> int:
        database = Database(asyncpg_url(stack.database_url), role=DB_ROLE, pool_size=1)
        try:
            async with database.unit_of_work(scope="") as session:
                return await session_rows.prune_revocations(session, datetime.now(UTC))
        finally:
            await database.dispose()

    assert asyncio.run(prune()) >= 1
    remaining = {row[0] for row in stack.sql("SELECT session_id FROM auth.session_revocations")}
    assert old not in remaining and live in remaining


def test_a_refresh_cut_short_after_its_bind_leaves_no_transaction_on_the_pooled_connection(stack: Stack) -> None:
    """The bind opens the transaction; a call cancelled once the server has run it must still end it,
    as SQLAlchemy's reset of a returned connection ends only what SQLAlchemy began."""

    class CancelledAfterTheBind:
        def __init__(self, connection: Any) -> None:
            self.connection = connection

        async def execute(self, statement: str, *args: Any) -> str:
            done: str = await self.connection.execute(statement, *args)
            if statement.startswith("BEGIN"):
                raise asyncio.CancelledError
            return done

    async def scenario() -> tuple[bool, bool]:
        database = Database(asyncpg_url(stack.database_url), role=DB_ROLE, pool_size=1)
        opened = database.single_statement

        @asynccontextmanager
        async def cut_short() -> AsyncIterator[Any]:
            async with opened() as connection:
                yield CancelledAfterTheBind(connection)

        try:
            database.single_statement = cut_short  # type: ignore[method-assign]
            with contextlib.suppress(asyncio.CancelledError):
                async with session_rows.refresh_transaction(database, uuid.uuid4(), b"\x00" * 32):
                    pass
            database.single_statement = opened  # type: ignore[method-assign]
            async with opened() as connection:
                left_open = connection.is_in_transaction()
                bound = await connection.fetchval("SELECT current_setting('app.subject_id', true)")
            return left_open, bool(bound)
        finally:
            await database.dispose()

    left_open, bound = asyncio.run(scenario())
    assert not left_open
    assert not bound
