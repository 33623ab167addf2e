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
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from kit.convert import timestamp
from kit.error_details import Reason
from kit.errors import Unavailable

log = logging.getLogger(__name__)

# How long a service keeps trusting its list after the stream from auth broke.
DEFAULT_MAX_STALENESS_SECONDS = 5.0
# Pause between attempts to reopen the stream. The channel itself reconnects
# within its own (short) backoff; this only spaces out refused attempts.
RECONNECT_PAUSE_SECONDS = 0.1
# Auth sends a heartbeat after this long without revocations; a subscriber
# hearing nothing for SILENCE_LIMIT_SECONDS takes the stream for dead (a peer
# gone without closing its connection), instead of trusting it until keepalive
# gives up.
HEARTBEAT_SECONDS = 1.0
SILENCE_LIMIT_SECONDS = 3.0

Revocation = tuple[UUID, datetime]


def not_current(message: str) -> Unavailable:
    # A stream reopens within a fraction of a second of auth answering again.
    return Unavailable(message, reason=Reason.REVOCATIONS_NOT_CURRENT, retry_after_seconds=1)


class RevokedSessions:
    def __init__(self, *, max_staleness: float = DEFAULT_MAX_STALENESS_SECONDS) -> None:
        self._until: dict[UUID, datetime] = {}
        self._subscribers: set[asyncio.Queue[Revocation]] = set()
        self._max_staleness = max_staleness
        self._complete = False
        # monotonic time the source was lost at; None while it is connected.
        self._source_lost_at: float | None = None

    def revoke(self, session_id: UUID, until: datetime) -> None:
        if until <= datetime.now(UTC):
            return
        known = self._until.get(session_id)
        self._until[session_id] = max(until, known) if known else until
        for queue in self._subscribers:
            queue.put_nowait((session_id, until))

    def mark_complete(self) -> None:
        """Every live revocation is in, and the source is connected."""
        self._complete = True
        self._source_lost_at = None

    def mark_source_lost(self) -> None:
        if self._complete and self._source_lost_at is None:
            self._source_lost_at = time.monotonic()

    def is_current(self) -> bool:
        if not self._complete:
            return False
        lost_at = self._source_lost_at
        return lost_at is None or time.monotonic() - lost_at < self._max_staleness

    def ensure_current(self) -> None:
        """Raises Unavailable unless the list can be trusted now."""
        if not self._complete:
            raise not_current("revocations are not loaded yet; retry shortly")
        if not self.is_current():
            raise not_current("revocations are not current: the auth service is unreachable; retry shortly")

    def is_revoked(self, session_id: UUID) -> bool:
        """Whether the session has ended; Unavailable when that cannot be known."""
        self.ensure_current()
        until = self._until.get(session_id)
        if until is None:
            return False
        if until <= datetime.now(UTC):
            del self._until[session_id]
            return False
        return True

    def live(self) -> list[Revocation]:
        now = datetime.now(UTC)
        expired = [sid for sid, until in self._until.items() if until <= now]
        for sid in expired:
            del self._until[sid]
        return list(self._until.items())

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
    """Keeps revoked in step with the auth service, reconnecting forever.

    The stream waits for the channel to be ready, so it reopens as soon as the
    channel reconnects to auth (see kit.clients for its backoff).
    """
    stub = auth_service_pb2_grpc.AuthInternalServiceStub(channel)
    while True:
        stream = stub.WatchRevocations(
            auth_service_pb2.WatchRevocationsRequest(), metadata=internal_metadata, wait_for_ready=True
        )
        try:
            await _apply_stream(stream, revoked)
            log.warning("revocation stream ended")
        except grpc.aio.AioRpcError as error:
            log.warning("revocation stream interrupted", extra={"grpc_status": error.code().name})
        except TimeoutError:
            log.warning("revocation stream silent; reconnecting", extra={"silent_seconds": SILENCE_LIMIT_SECONDS})
        except (ValueError, TypeError):
            log.error("malformed revocation event; reconnecting", exc_info=True)
        finally:
            stream.cancel()
            revoked.mark_source_lost()
        await asyncio.sleep(RECONNECT_PAUSE_SECONDS)


async def _apply_stream(stream: Any, revoked: RevokedSessions) -> None:
    """Applies events until the stream ends; TimeoutError once it has been
    silent too long after the snapshot (before it, waiting is for the channel)."""
    while True:
        silence_limit = SILENCE_LIMIT_SECONDS if revoked.is_current() else None
        event = await asyncio.wait_for(stream.read(), silence_limit)
        if event is grpc.aio.EOF:
            return
        if event.HasField("snapshot_complete"):
            revoked.mark_complete()
            log.info("revocations current", extra={"revoked_sessions": len(revoked.live())})
        elif event.HasField("revoked"):
            revoked.revoke(UUID(event.revoked.session_id), event.revoked.revoked_until.ToDatetime(tzinfo=UTC))
