"""The transactional outbox in the application's own database.

    outbox = AuditOutbox(audit_outbox_table(metadata, schema="tickets"))
    async with sessions() as session, session.begin():
        session.add(ticket)
        await outbox.record(session, action="tickets.created", resource_type="ticket", resource_id=ticket.id)

`record` inserts the event into the outbox table in the application's
transaction, so the event exists exactly when the change committed. A relay
(`await outbox.relay(sessions, audit_client)`, a background task) takes the
oldest events, sends them one tenant per batch, and deletes them once the
audit service has acknowledged them; the audit service stores each event id
once, so a batch sent again after a lost answer or a crash is harmless, and
several replicas relay side by side (FOR UPDATE SKIP LOCKED). While the audit
service is unreachable events wait in the table: nothing is lost.

The outbox table needs no row-level security policy of its own: requests only
insert into it, and the relay must read every tenant's events. Create it
with `create_audit_outbox_sql(schema)` in the application's migrations, and
grant the runtime role SELECT, INSERT, UPDATE (for the relay's row locks) and
DELETE on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import grpc
from sqlalchemy import Column, DateTime, MetaData, Select, String, Table, delete, event, insert, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenantry_client.audit import AuditEvent, AuditIngest
from tenantry_client.context import current_principal

log = logging.getLogger(__name__)

RELAY_BATCH_SIZE = 200
# How long a tenant whose batch failed is left out before it is tried again.
HOLD_SECONDS = 5.0
TABLE_NAME = "audit_outbox"


def audit_outbox_table(metadata: MetaData, *, schema: str | None = None) -> Table:
    return Table(
        TABLE_NAME,
        metadata,
        Column("id", PG_UUID(as_uuid=True), primary_key=True),
        Column("tenant_id", PG_UUID(as_uuid=True)),
        Column("user_id", PG_UUID(as_uuid=True)),
        Column("action", String(100), nullable=False),
        Column("resource_type", String(100), nullable=False),
        Column("resource_id", String(200), nullable=False),
        Column("details", JSONB, nullable=False),
        Column("category", String(20), nullable=False),
        Column("outcome", String(10), nullable=False),
        Column("request_id", String(128)),
        Column("created_at", DateTime(timezone=True), nullable=False),
        schema=schema,
    )


def create_audit_outbox_sql(schema: str) -> list[str]:
    """The outbox's DDL, for the application's migration."""
    return [
        f"""
        CREATE TABLE IF NOT EXISTS {schema}.{TABLE_NAME} (
            id uuid PRIMARY KEY,
            tenant_id uuid,
            user_id uuid,
            action varchar(100) NOT NULL,
            resource_type varchar(100) NOT NULL,
            resource_id varchar(200) NOT NULL,
            details jsonb NOT NULL,
            category varchar(20) NOT NULL,
            outcome varchar(10) NOT NULL,
            request_id varchar(128),
            created_at timestamptz NOT NULL
        )
        """,
        f"CREATE INDEX IF NOT EXISTS {TABLE_NAME}_created_at ON {schema}.{TABLE_NAME} (created_at)",
    ]


class AuditOutbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._pending = asyncio.Event()
        self._on_commit = lambda _session: self._pending.set()
        # Tenants whose last batch failed, and the monotonic time until which they wait.
        self._held: dict[UUID | None, float] = {}

    async def record(
        self,
        session: AsyncSession,
        *,
        action: str,
        resource_type: str,
        resource_id: str | UUID,
        details: dict[str, Any] | None = None,
        category: str = "",
        outcome: str = "",
        tenant_id: UUID | None = None,
        user_id: UUID | None = None,
        request_id: str | None = None,
    ) -> UUID:
        """Adds an event to session's transaction; tenant and user default to the caller's.

        category ("data", "admin", …) and outcome ("success", "failure") as in
        audit.AuditEvent. details go to the tenant's trail for good: never put
        a secret in them."""
        principal = current_principal()
        event_id = uuid.uuid4()
        await session.execute(
            insert(self.table).values(
                id=event_id,
                tenant_id=tenant_id if tenant_id is not None else (principal.tenant_id if principal else None),
                user_id=user_id if user_id is not None else (principal.user_id if principal else None),
                action=action,
                resource_type=resource_type,
                resource_id=str(resource_id),
                details=details or {},
                category=category,
                outcome=outcome,
                request_id=request_id,
                created_at=datetime.now(UTC),
            )
        )
        # Woken after commit only: before it, the relay could not see the row.
        if not event.contains(session.sync_session, "after_commit", self._on_commit):
            event.listen(session.sync_session, "after_commit", self._on_commit, once=True)
        return event_id

    async def deliver_batch(self, sessions: async_sessionmaker[AsyncSession], ingest: AuditIngest) -> int:
        """Sends the oldest events, one batch per tenant, and deletes those acknowledged; how many.

        A tenant whose batch is refused (no credential for it, a credential
        refused) is held back for HOLD_SECONDS, so it never stands in the way
        of the others. The audit service being away ends the pass. The first
        failure is raised only when nothing at all was delivered."""
        async with sessions() as session, session.begin():
            rows = list((await session.execute(self._oldest_deliverable())).all())
            rows.sort(key=lambda row: str(row.tenant_id or ""))
            delivered, failures = 0, []
            for tenant_id, group in itertools.groupby(rows, key=lambda row: row.tenant_id):
                events = [_event(row) for row in group]
                try:
                    await ingest.append(tenant_id, events)
                except Exception as failure:
                    failures.append(failure)
                    if _audit_service_away(failure):
                        break  # every tenant's batch would fail alike: back off
                    log.warning("audit events of tenant %s held back: %s", tenant_id, _reason(failure))
                    self._held[tenant_id] = time.monotonic() + HOLD_SECONDS
                    continue
                self._held.pop(tenant_id, None)
                await session.execute(delete(self.table).where(self.table.c.id.in_([event.id for event in events])))
                delivered += len(events)
            if failures and not delivered:
                raise failures[0]
            return delivered

    def _oldest_deliverable(self) -> Select[Any]:
        now = time.monotonic()
        held = {tenant for tenant, until in self._held.items() if until > now}
        query = select(self.table).order_by(self.table.c.created_at).limit(RELAY_BATCH_SIZE)
        if None in held:
            query = query.where(self.table.c.tenant_id.is_not(None))
        if held - {None}:
            tenants = [tenant for tenant in held if tenant is not None]
            query = query.where(or_(self.table.c.tenant_id.is_(None), self.table.c.tenant_id.not_in(tenants)))
        # SKIP LOCKED: replicas relay side by side without sending the same rows at once.
        return query.with_for_update(skip_locked=True)

    async def relay(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ingest: AuditIngest,
        *,
        poll_interval: float = 1.0,
    ) -> None:
        """Delivers the outbox until cancelled, backing off while the audit service or database is away."""
        backoff = 0.2
        while True:
            try:
                delivered = await self.deliver_batch(sessions, ingest)
                backoff = 0.2
                if delivered == RELAY_BATCH_SIZE:
                    continue
                self._pending.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._pending.wait(), timeout=poll_interval)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as error:
                log.warning("audit outbox relay retrying: %s", _reason(error))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.warning("audit outbox relay retrying", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def _audit_service_away(failure: Exception) -> bool:
    return isinstance(failure, grpc.aio.AioRpcError) and failure.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )


def _reason(failure: Exception) -> str:
    return failure.code().name if isinstance(failure, grpc.aio.AioRpcError) else type(failure).__name__


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        action=row.action,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        details=row.details,
        category=row.category,
        outcome=row.outcome,
        request_id=row.request_id or "",
        created_at=row.created_at,
    )
