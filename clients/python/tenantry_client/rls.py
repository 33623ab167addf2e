"""The caller's tenant bound for PostgreSQL row-level security, per transaction.

Give tenant-scoped tables a policy on the setting, e.g.

    ALTER TABLE tickets.tickets ENABLE ROW LEVEL SECURITY;
    ALTER TABLE tickets.tickets FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON tickets.tickets
        USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
        WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

and connect as a role that owns no table. Then

    bind_tenant_per_transaction(sessions)     # once, on the async_sessionmaker

binds the tenant of the current request (tenantry_client.context) at the
start of every transaction of those sessions, with `set_config(...,
true)`: transaction-local, so a pooled connection never carries one request's
tenant into the next. With no tenant in context it binds '' and the policy
above matches no row. `tenant_transaction()` does the same for one block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from tenantry_client.context import current_tenant_id

TENANT_SETTING = "app.tenant_id"
_BIND = text("SELECT set_config(:setting, :tenant, true)")


async def bind_tenant(session: AsyncSession, tenant_id: UUID | None) -> None:
    """Binds tenant_id for the rest of session's current transaction."""
    await session.execute(_BIND, {"setting": TENANT_SETTING, "tenant": str(tenant_id) if tenant_id else ""})


def bind_tenant_per_transaction(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Every transaction of these sessions starts bound to the current request's tenant."""
    sync_session_class = sessions.kw.get("sync_session_class", Session)

    # A subclass of the sessions' own class, so the listener reaches these sessions only.
    class TenantBoundSession(sync_session_class):  # type: ignore[misc, valid-type]
        pass

    @event.listens_for(TenantBoundSession, "after_begin")
    def _bind(session: Session, transaction: SessionTransaction, connection: Any) -> None:
        tenant = current_tenant_id()
        connection.execute(_BIND, {"setting": TENANT_SETTING, "tenant": str(tenant) if tenant else ""})

    sessions.configure(sync_session_class=TenantBoundSession)


@asynccontextmanager
async def tenant_transaction(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID | None = None
) -> AsyncIterator[AsyncSession]:
    """One transaction bound to tenant_id (default: the current request's), committed at the end."""
    async with sessions() as session, session.begin():
        await bind_tenant(session, tenant_id if tenant_id is not None else current_tenant_id())
        yield session
