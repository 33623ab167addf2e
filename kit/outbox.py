"""The transactional outbox: audit events written with the change they record.

A service records its audit events into an `outbox` table of its own schema
in the same transaction as the change, so an event exists if and only if the
change committed. A relay ships the outbox to the audit service in batches
and deletes what was acknowledged; the audit service stores each event id
once, so a batch retried after a lost acknowledgement is harmless. While the
audit service is down events wait in the outbox: nothing is lost.

The outbox has no row-level security: no request reads it, only the relay,
which must see every tenant's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import grpc
from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenantry.audit.v1 import audit_service_pb2, audit_service_pb2_grpc

from kit.audit_events import to_audit_event
from kit.clients import internal_channel, internal_metadata
from kit.context import current_principal, current_request
from kit.db import Database, after_commit, is_connection_failure
from kit.service_identity import ServiceTokens
from kit.settings import ServiceSettings

log = logging.getLogger(__name__)

RELAY_BATCH_SIZE = 200
# The longest an idle relay waits before looking for rows it was not told of.
IDLE_POLL_LIMIT_SECONDS = 30.0

Job = Callable[[], Coroutine[Any, Any, None]]


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", PG_UUID(as_uuid=True), primary_key=True),
        Column("tenant_id", PG_UUID(as_uuid=True)),
        Column("user_id", PG_UUID(as_uuid=True)),
        Column("action", String(100), nullable=False),
        Column("resource_type", String(100), nullable=False),
        Column("resource_id", String(200), nullable=False),
        Column("details", JSONB, nullable=False),
        Column("ip_address", INET),
        Column("user_agent", String(512)),
        Column("request_id", String(128)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True),
    )


class Outbox:
    """Records events into a service's outbox and ships them to the audit service."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._pending = asyncio.Event()

    async def record(
        self,
        session: AsyncSession,
        *,
        action: str,
        resource_type: str,
        resource_id: str | UUID,
        details: dict[str, Any] | None = None,
        tenant_id: UUID | None = None,
        user_id: UUID | None = None,
    ) -> None:
        """Adds an audit event to the current transaction.

        tenant_id and user_id default to the caller's. details must never
        hold a secret (passwords, tokens).
        """
        principal = current_principal()
        request = current_request()
        await session.execute(
            insert(self.table).values(
                id=uuid.uuid4(),
                tenant_id=tenant_id if tenant_id is not None else (principal.tenant_id if principal else None),
                user_id=user_id if user_id is not None else (principal.user_id if principal else None),
                action=action,
                resource_type=resource_type,
                resource_id=str(resource_id),
                details=details or {},
                ip_address=valid_ip(request.peer_ip) if request else None,
                user_agent=request.user_agent if request else None,
                request_id=request.request_id if request else None,
                created_at=datetime.now(UTC),
            )
        )
        after_commit(session, self._pending.set)

    def wake_relay(self) -> None:
        """Tells the relay that events were committed by a path outside record()."""
        self._pending.set()

    async def relay(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ingest: audit_service_pb2_grpc.AuditIngestServiceStub,
        metadata: tuple[tuple[str, str], ...],
        *,
        idle_interval: float = 1.0,
        longest_idle_interval: float = IDLE_POLL_LIMIT_SECONDS,
    ) -> None:
        """Ships the outbox forever: woken at once by events this process
        commits, backing off on failure. The poll is only for rows another
        process left behind (a replica that stopped before shipping), so
        while the outbox stays empty its interval doubles, from idle_interval
        up to longest_idle_interval: an idle service costs PostgreSQL a query
        every half minute, not every second."""
        backoff = 0.2
        idle = idle_interval
        while True:
            try:
                shipped = await self.ship_batch(sessions, ingest, metadata)
                backoff = 0.2
                if shipped == RELAY_BATCH_SIZE:
                    continue
                idle = idle_interval if shipped else min(idle * 2, longest_idle_interval)
                self._pending.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._pending.wait(), timeout=idle)
            except (grpc.aio.AioRpcError, OSError, ConnectionError) as error:
                reason = error.code().name if isinstance(error, grpc.aio.AioRpcError) else type(error).__name__
                log.warning("outbox relay retrying", extra={"reason": reason})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as error:
                if is_connection_failure(error):
                    log.warning("outbox relay retrying", extra={"reason": "database unreachable"})
                else:
                    log.error("outbox relay failed", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def ship_batch(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ingest: audit_service_pb2_grpc.AuditIngestServiceStub,
        metadata: tuple[tuple[str, str], ...],
    ) -> int:
        """Sends the oldest events and deletes them once acknowledged; returns how many."""
        async with sessions() as session, session.begin():
            # SKIP LOCKED lets several replicas relay side by side without
            # shipping the same rows at the same time.
            rows = (
                await session.execute(
                    select(self.table)
                    .order_by(self.table.c.created_at)
                    .limit(RELAY_BATCH_SIZE)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            request = audit_service_pb2.AppendAuditEventsRequest(events=[to_audit_event(row) for row in rows])
            await ingest.AppendAuditEvents(request, metadata=metadata, timeout=10)
            await session.execute(delete(self.table).where(self.table.c.id.in_([row.id for row in rows])))
            return len(rows)


def relay_jobs(
    outbox: Outbox, database: Database, settings: ServiceSettings, tokens: ServiceTokens | None = None
) -> tuple[Job, Job]:
    """The background job that ships a service's outbox (with the service's tokens), and the one closing its channel."""
    channel = internal_channel(settings.audit_service_addr, tokens)
    metadata = internal_metadata(settings.internal_api_token.get_secret_value(), tokens)

    async def relay() -> None:
        await outbox.relay(database.sessions, audit_service_pb2_grpc.AuditIngestServiceStub(channel), metadata)

    async def close() -> None:
        await channel.close()

    return relay, close


def valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def create_outbox_sql(schema: str) -> list[str]:
    """DDL for a service's outbox, for its migrations."""
    return [
        f"""
        CREATE TABLE {schema}.outbox (
            id uuid PRIMARY KEY,
            tenant_id uuid,
            user_id uuid,
            action varchar(100) NOT NULL,
            resource_type varchar(100) NOT NULL,
            resource_id varchar(200) NOT NULL,
            details jsonb NOT NULL,
            ip_address inet,
            user_agent varchar(512),
            request_id varchar(128),
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        f"CREATE INDEX outbox_created_at ON {schema}.outbox (created_at)",
    ]
