"""Revoked sessions, known to every service within a second of a logout.

The auth service is the source: it streams every revocation whose access
tokens may still be live, then a snapshot_complete marker, then each new
revocation, over AuthInternalService.WatchRevocations. Each service keeps them
in memory and refuses access tokens whose `sid` is listed, until they would
have expired anyway.

Revocation fails closed. A list that has never been complete (no snapshot yet)
answers UNAVAILABLE instead of "not revoked"; a list whose stream broke is
trusted for `max_staleness` seconds more, then answers UNAVAILABLE until a new
stream has delivered a fresh snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import grpc
from tenantry.auth.v1 import auth_service_pb2

# The list and the stream's subscriber are the client library's, so backends
# built on Tenantry fail closed exactly as its services do.
from tenantry_client.revocations import (
    DEFAULT_MAX_STALENESS_SECONDS,
    HEARTBEAT_SECONDS,
    RECONNECT_PAUSE_SECONDS,
    SILENCE_LIMIT_SECONDS,
    RevocationList,
)
from tenantry_client.revocations import follow_revocations as _follow

from kit.convert import timestamp
from kit.error_details import Reason
from kit.errors import Unavailable

__all__ = [
    "DEFAULT_MAX_STALENESS_SECONDS",
    "HEARTBEAT_SECONDS",
    "RECONNECT_PAUSE_SECONDS",
    "SILENCE_LIMIT_SECONDS",
    "RevokedSessions",
    "follow_revocations",
    "revocation_events",
]

Revocation = tuple[UUID, datetime]


def not_current(message: str) -> Unavailable:
    # A stream reopens within a fraction of a second of auth answering again.
    return Unavailable(message, reason=Reason.REVOCATIONS_NOT_CURRENT, retry_after_seconds=1)


class RevokedSessions(RevocationList):
    """The client library's list, raising kit's Unavailable, and able to feed
    WatchRevocations subscribers (auth is the source every other service follows)."""

    unavailable = staticmethod(not_current)  # type: ignore[assignment]

    def __init__(self, *, max_staleness: float = DEFAULT_MAX_STALENESS_SECONDS) -> None:
        super().__init__(max_staleness=max_staleness)
        self._subscribers: set[asyncio.Queue[Revocation]] = set()

    def revoke(self, session_id: UUID, until: datetime) -> None:
        if self._store(session_id, until):
            for queue in self._subscribers:
                queue.put_nowait((session_id, until))

    def subscribe(self) -> asyncio.Queue[Revocation]:
        queue: asyncio.Queue[Revocation] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Revocation]) -> None:
        self._subscribers.discard(queue)


async def revocation_events(revoked: RevokedSessions) -> AsyncIterator[auth_service_pb2.WatchRevocationsResponse]:
    """What WatchRevocations streams: the live revocations, the end-of-snapshot marker, then each new one."""
    if not revoked.is_current():
        raise not_current("revocations are not loaded yet; retry shortly")
    # Subscribe before the snapshot, so nothing falls between the two.
    queue = revoked.subscribe()
    try:
        for session_id, until in revoked.live():
            yield _revoked_event(session_id, until)
        yield auth_service_pb2.WatchRevocationsResponse(snapshot_complete=auth_service_pb2.SnapshotComplete())
        while True:
            try:
                session_id, until = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                if not revoked.is_current():
                    # No heartbeat for a list this replica no longer trusts: the subscriber
                    # goes stale as this one is, and reconnects, perhaps to a replica that is current.
                    raise not_current("this replica's revocations are not current; reconnect") from None
                yield auth_service_pb2.WatchRevocationsResponse(heartbeat=auth_service_pb2.Heartbeat())
                continue
            if until > datetime.now(UTC):
                yield _revoked_event(session_id, until)
    finally:
        revoked.unsubscribe(queue)


def _revoked_event(session_id: UUID, until: datetime) -> auth_service_pb2.WatchRevocationsResponse:
    return auth_service_pb2.WatchRevocationsResponse(
        revoked=auth_service_pb2.SessionRevoked(session_id=str(session_id), revoked_until=timestamp(until))
    )


async def follow_revocations(
    channel: grpc.aio.Channel, internal_metadata: tuple[tuple[str, str], ...], revoked: RevokedSessions
) -> None:
    """Keeps revoked in step with the auth service, reconnecting forever (see kit.clients for the channel's backoff)."""

    async def credentials() -> tuple[tuple[str, str], ...]:
        return internal_metadata

    await _follow(channel, credentials, revoked)
