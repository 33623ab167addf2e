"""Revoked sessions, from auth's revocation stream (WatchRevocations).

Auth streams every revocation whose access tokens may still be live, then a
snapshot-complete marker, then each new revocation as it happens (a logout, a
member removed), with a heartbeat every second. A token whose `sid` is listed
is refused until it would have expired anyway.

Fails closed, as Tenantry's services do: until the first snapshot is in, and
from `max_staleness` seconds after the stream broke until a new snapshot,
every check raises VerificationUnavailable instead of answering "not revoked".
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from tenantry_client.credentials import CredentialSource
from tenantry_client.errors import VerificationUnavailable

log = logging.getLogger(__name__)

# How long the list is trusted after the stream from auth broke.
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


class RevocationList:
    # What a check raises while the list cannot be trusted. Tenantry's kit
    # raises its own typed error (a subclass sets it), a backend this one.
    unavailable: type[Exception] = VerificationUnavailable

    def __init__(self, *, max_staleness: float = DEFAULT_MAX_STALENESS_SECONDS) -> None:
        self._until: dict[UUID, datetime] = {}
        self._max_staleness = max_staleness
        self._complete = False
        # monotonic time the source was lost at; None while it is connected.
        self._source_lost_at: float | None = None

    def revoke(self, session_id: UUID, until: datetime) -> None:
        self._store(session_id, until)

    def _store(self, session_id: UUID, until: datetime) -> bool:
        """Lists the session until then; False (nothing listed) when that has passed."""
        if until <= datetime.now(UTC):
            return False
        known = self._until.get(session_id)
        self._until[session_id] = max(until, known) if known else until
        return True

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
        """Raises `unavailable` unless the list can be trusted now."""
        if not self._complete:
            raise self.unavailable("revocations are not loaded yet; retry shortly")
        if not self.is_current():
            raise self.unavailable("revocations are not current: the auth service is unreachable; retry shortly")

    def is_revoked(self, session_id: UUID) -> bool:
        """Whether the session has ended; `unavailable` when that cannot be known."""
        self.ensure_current()
        until = self._until.get(session_id)
        if until is None:
            return False
        if until <= datetime.now(UTC):
            del self._until[session_id]
            return False
        return True

    def live(self) -> list[tuple[UUID, datetime]]:
        now = datetime.now(UTC)
        for expired in [sid for sid, until in self._until.items() if until <= now]:
            del self._until[expired]
        return list(self._until.items())


async def follow_revocations(channel: grpc.aio.Channel, credentials: CredentialSource, revoked: RevocationList) -> None:
    """Keeps revoked in step with auth, reconnecting until cancelled.

    The stream waits for the channel to be ready, so it reopens as soon as the
    channel reconnects to auth."""
    stub = auth_service_pb2_grpc.AuthInternalServiceStub(channel)
    while True:
        stream = stub.WatchRevocations(
            auth_service_pb2.WatchRevocationsRequest(), metadata=tuple(await credentials()), wait_for_ready=True
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


async def _apply_stream(stream: Any, revoked: RevocationList) -> None:
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
