"""Revoked sessions, known to every service within a second of a logout.

The auth service is the source: it streams each revocation (and, on connect,
every revocation whose access tokens may still be live) over
AuthInternalService.WatchRevocations. Each service keeps them in memory and
refuses access tokens whose `sid` is listed, until they would have expired
anyway.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from uuid import UUID

import grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

log = logging.getLogger(__name__)


class RevokedSessions:
    def __init__(self) -> None:
        self._until: dict[UUID, datetime] = {}
        self._subscribers: set[asyncio.Queue[tuple[UUID, datetime]]] = set()

    def revoke(self, session_id: UUID, until: datetime) -> None:
        if until <= datetime.now(UTC):
            return
        known = self._until.get(session_id)
        self._until[session_id] = max(until, known) if known else until
        for queue in self._subscribers:
            queue.put_nowait((session_id, until))

    def is_revoked(self, session_id: UUID) -> bool:
        until = self._until.get(session_id)
        if until is None:
            return False
        if until <= datetime.now(UTC):
            del self._until[session_id]
            return False
        return True

    def live(self) -> list[tuple[UUID, datetime]]:
        now = datetime.now(UTC)
        expired = [sid for sid, until in self._until.items() if until <= now]
        for sid in expired:
            del self._until[sid]
        return list(self._until.items())

    def subscribe(self) -> asyncio.Queue[tuple[UUID, datetime]]:
        queue: asyncio.Queue[tuple[UUID, datetime]] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[tuple[UUID, datetime]]) -> None:
        self._subscribers.discard(queue)


async def follow_revocations(
    channel: grpc.aio.Channel, internal_metadata: tuple[tuple[str, str], ...], revoked: RevokedSessions
) -> None:
    """Keeps revoked in step with the auth service, reconnecting forever."""
    stub = auth_service_pb2_grpc.AuthInternalServiceStub(channel)
    backoff = 0.2
    while True:
        try:
            stream = stub.WatchRevocations(auth_service_pb2.WatchRevocationsRequest(), metadata=internal_metadata)
            async for event in stream:
                revoked.revoke(UUID(event.session_id), event.revoked_until.ToDatetime(tzinfo=UTC))
                backoff = 0.2
        except grpc.aio.AioRpcError as error:
            log.warning("revocation stream interrupted", extra={"grpc_status": error.code().name})
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 2.0)
