"""Database engine and units of work bound to the caller's tenant.

Each service connects through a pool and switches every connection to its own
runtime role (`SET ROLE`), which owns no table: PostgreSQL's row-level security
then applies to every query. A unit of work binds the tenant of the request
(`app.tenant_id`) for its transaction only, so a pooled connection never
carries one request's tenant into the next.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from kit.context import current_principal
from kit.error_details import Reason
from kit.errors import DomainError, Unavailable

log = logging.getLogger(__name__)

# The value of app.tenant_id for the platform operator's requests, who act
# above any tenant. Policies that let operators through test for it.
PLATFORM_SCOPE = "platform"

_AFTER_COMMIT = "tenantry_after_commit"

# A connection attempt gives up after this long (asyncpg's default is 60 s),
# so an unreachable host answers UNAVAILABLE instead of hanging every request.
CONNECT_TIMEOUT_SECONDS = 5.0

# Errors meaning "PostgreSQL cannot be reached, or it dropped the connection":
# refused or timed-out connects, a server shutting down or starting up, too
# many connections. Never a fault of the query itself.
_UNREACHABLE = (
    OSError,  # ConnectionRefusedError, a missing Unix socket, DNS failures
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


def database_unavailable() -> Unavailable:
    """What a call answers while the database cannot be reached. A second is worth waiting: a broken
    pooled connection is dropped at once and the next call connects anew."""
    return Unavailable(
        "the database is unavailable; retry later", reason=Reason.DATABASE_UNAVAILABLE, retry_after_seconds=1
    )


def is_connection_failure(error: BaseException) -> bool:
    """Whether error (or what it wraps) says the database is unreachable."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _UNREACHABLE):
            return True
        if isinstance(current, asyncpg.InterfaceError) and "connection is closed" in str(current):
            return True
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return False


def scope_of_caller() -> str:
    principal = current_principal()
    if principal is None:
        return ""
    if principal.tenant_id is None:
        return PLATFORM_SCOPE if principal.is_platform_admin else ""
    return str(principal.tenant_id)


async def bind_scope(session: AsyncSession, *, tenant: UUID | str | None = None, subject: UUID | None = None) -> None:
    """Binds the tenant (and, for a user's own rows, the subject) to the transaction."""
    await session.execute(
        text("SELECT set_config('app.tenant_id', :tenant, true), set_config('app.subject_id', :subject, true)"),
        {"tenant": "" if tenant is None else str(tenant), "subject": "" if subject is None else str(subject)},
    )


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Runs callback once the unit of work has committed (never on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


class Database:
    def __init__(self, url: str, *, role: str, pool_size: int = 10) -> None:
        self.role = role
        self.engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            connect_args={
                "server_settings": {"application_name": f"tenantry-{role}"},
                "timeout": CONNECT_TIMEOUT_SECONDS,
            },
        )
        # monotonic time the current outage was first seen at, None when reachable.
        self._outage_since: float | None = None
        event.listen(self.engine.sync_engine, "connect", self._assume_role)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    def _assume_role(self, dbapi_connection: Any, _record: Any) -> None:
        # The role name is a constant of the service, never user input.
        dbapi_connection.run_async(lambda connection: connection.execute(f'SET ROLE "{self.role}"'))

    @asynccontextmanager
    async def unit_of_work(self, *, scope: str | None = None) -> AsyncIterator[AsyncSession]:
        """One transaction at the request boundary: services never commit.

        scope defaults to the caller's tenant (or the platform scope for
        operators, or none for anonymous callers). While the database is
        unreachable it raises Unavailable (UNAVAILABLE, REST 503).
        """
        try:
            async with self.sessions() as session:
                tenant = scope_of_caller() if scope is None else scope
                if tenant:
                    # Every binding is transaction-local (set_config(..., true)), so a new
                    # transaction has none: binding the empty scope would be a round trip for nothing.
                    await bind_scope(session, tenant=tenant)
                try:
                    yield session
                except DomainError as error:
                    if error.keeps_changes:
                        await self._commit(session)
                    else:
                        await session.rollback()
                    raise
                except BaseException as error:
                    if isinstance(error, Exception) and is_connection_failure(error):
                        # The connection is gone: rolling back can only fail again.
                        with suppress(Exception):
                            await session.rollback()
                    else:
                        await session.rollback()
                    raise
                else:
                    await self._commit(session)
        except Exception as error:
            if is_connection_failure(error):
                raise self._unreachable(error) from None
            raise
        self._reachable()

    @asynccontextmanager
    async def single_statement(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection outside any transaction, for a hot read that costs
        one round trip: no BEGIN, no COMMIT, no separate set_config. (Auth's
        refresh also opens its own transaction on it, binding in the same message.)

        Only for statements that bind their own scope, such as a server-side
        function calling set_config(..., true) before it selects: the statement
        is then its own transaction, so row-level security applies under the
        runtime role and the binding ends with the statement. A plain query run
        here sees no tenant, and so, under the policies, no rows.
        """
        try:
            async with self.engine.connect() as connection:
                fairy = await connection.get_raw_connection()
                driver = fairy.driver_connection
                assert driver is not None
                yield driver
        except Exception as error:
            if is_connection_failure(error):
                raise self._unreachable(error) from None
            raise
        self._reachable()

    def _unreachable(self, error: BaseException) -> Unavailable:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("database unreachable; answering UNAVAILABLE", extra={"reason": type(error).__name__})
        return database_unavailable()

    def _reachable(self) -> None:
        if self._outage_since is not None:
            log.info(
                "database reachable again",
                extra={"outage_seconds": round(time.monotonic() - self._outage_since, 2)},
            )
            self._outage_since = None

    async def _commit(self, session: AsyncSession) -> None:
        await session.commit()
        for callback in session.info.pop(_AFTER_COMMIT, []):
            callback()

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:
            if is_connection_failure(error):
                raise self._unreachable(error) from None
            raise
        self._reachable()

    async def dispose(self) -> None:
        await self.engine.dispose()
