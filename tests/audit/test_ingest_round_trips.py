"""Round trips to PostgreSQL per ingested batch, counted at the driver: deterministic, unlike timings.

Internal ingest: per tenant of the batch, a transaction of its own: BEGIN, lock the head and find the stored events,
insert and move the head, COMMIT, whatever the batch's size (the unit of work binds no scope of its own: each
tenant's is bound as its head is locked). An application's batch: the same for its one tenant, where a replay
reads the stored events (to compare) instead of inserting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tenantry.audit.v1 import audit_pb2, audit_service_pb2

from benchmarks.round_trips import counting_round_trips
from kit.context import Principal, RequestContext, enter_request, leave_request
from kit.db import Database
from kit.settings import asyncpg_url
from services.audit.api import AuditApi, AuditIngestApi
from services.audit.checkpoints import CheckpointKey, CheckpointLog
from services.audit.models import DB_ROLE
from services.audit.service import AuditTrail
from tests.stack import AUDIT_CHAIN_KEY, Stack


@asynccontextmanager
async def trail_on(stack: Stack, folder: Path) -> AsyncIterator[tuple[AuditTrail, AuditApi]]:
    database = Database(asyncpg_url(stack.database_url), role=DB_ROLE, pool_size=1)
    key = CheckpointKey.load_or_create(folder / "key.pem")
    trail = AuditTrail(
        database, months_ahead=1, chain_key=AUDIT_CHAIN_KEY.encode(), checkpoints=CheckpointLog(folder / "c", key)
    )
    try:
        yield trail, AuditApi(database, trail, key)
    finally:
        await database.dispose()


def internal_batch(tenants: list[str], size: int) -> audit_service_pb2.AppendAuditEventsRequest:
    request = audit_service_pb2.AppendAuditEventsRequest()
    for index in range(size):
        event = request.events.add(
            id=str(uuid.uuid4()),
            tenant_id=tenants[index % len(tenants)],
            user_id=str(uuid.uuid4()),
            action="auth.token.refreshed",
            resource_type="session",
            resource_id=str(index),
        )
        event.details.update({"category": "auth", "outcome": "success"})
        event.created_at.FromDatetime(datetime.now(UTC))
    return request


def test_internal_ingest_costs_two_round_trips_per_tenant_whatever_the_batch_size(stack: Stack, tmp_path: Path) -> None:
    async def count(ingest: AuditIngestApi, request: audit_service_pb2.AppendAuditEventsRequest) -> int:
        with counting_round_trips() as sent:
            await ingest.AppendAuditEvents(request, None)  # type: ignore[arg-type]
        return len(sent)

    async def run() -> dict[str, int]:
        async with trail_on(stack, tmp_path) as (trail, _):
            ingest = AuditIngestApi(trail)
            tenants = [str(uuid.uuid4()) for _ in range(4)]
            await ingest.AppendAuditEvents(internal_batch(tenants, 4), None)  # type: ignore[arg-type]
            big = internal_batch(tenants, 500)
            return {
                "one tenant, 10 events": await count(ingest, internal_batch(tenants[:1], 10)),
                "four tenants, 500 events": await count(ingest, big),
                "the same 500 again": await count(ingest, big),
            }

    assert asyncio.run(run()) == {
        "one tenant, 10 events": 4,
        "four tenants, 500 events": 4 * 4,
        # Nothing new: no insert.
        "the same 500 again": 3 * 4,
    }


def test_an_application_batch_costs_two_round_trips_and_so_does_its_replay(stack: Stack, tmp_path: Path) -> None:
    principal = Principal(
        user_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        roles=frozenset({"owner"}),
        session_id=uuid.uuid4(),
        token_id="t",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        permissions=frozenset({"audit.write"}),
    )

    def batch(size: int) -> audit_service_pb2.BatchCreateAuditEventsRequest:
        request = audit_service_pb2.BatchCreateAuditEventsRequest()
        for index in range(size):
            event = request.events.add(
                id=str(uuid.uuid4()),
                action="document.shared",
                resource_type="document",
                resource_id=str(index),
                category=audit_pb2.AUDIT_CATEGORY_DATA,
            )
            event.created_at.FromDatetime(datetime.now(UTC))
        return request

    async def run() -> list[tuple[int, int]]:
        async with trail_on(stack, tmp_path) as (_, api):
            context = enter_request(RequestContext(request_id="r", method="test", principal=principal))
            counts = []
            try:
                warm_up = batch(3)
                for _ in range(2):  # a connection of the pool, its statements prepared
                    await api.BatchCreateAuditEvents(warm_up, None)  # type: ignore[arg-type]
                request = batch(1000)
                for _ in range(2):
                    with counting_round_trips() as sent:
                        reply = await api.BatchCreateAuditEvents(request, None)  # type: ignore[arg-type]
                    counts.append((len(sent), len(reply.receipts)))
            finally:
                leave_request(context)
            return counts

    assert asyncio.run(run()) == [(4, 1000), (4, 1000)]
