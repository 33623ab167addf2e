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
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from tenantry_client.errors import VerificationUnavailable

log = logging.getLogger(__name__)

DEFAULT_MAX_STALENESS_SECONDS = 5.0
RECONNECT_PAUSE_SECONDS = 0.1
# Auth sends a heartbeat each second; three silent seconds mean a dead stream.
SILENCE_LIMIT_SECONDS = 3.0

# The metadata of each call to auth: the caller's credential for
# WatchRevocations (today Tenantry's internal token, later a service account's
# access token with `auth.revocations.watch`), fetched anew for every stream
# so that a rotated credential is picked up.
Metadata = Sequence[tuple[str, str]]
CredentialSource = Callable[[], Awaitable[Metadata]]


class RevocationList:
    def __init__(self, *, max_staleness: float = DEFAULT_MAX_STALENESS_SECONDS) -> None:
        self._until: dict[UUID, datetime] = {}
        self._max_staleness = max_staleness
        self._complete = False
        self._source_lost_at: float | None = None

    def revoke(self, session_id: UUID, until: datetime) -> None:
        if until > datetime.now(UTC):
            known = self._until.get(session_id)
            self._until[session_id] = max(until, known) if known else until

    def mark_complete(self) -> None:
        self._complete = True
        self._source_lost_at = None

    def mark_source_lost(self) -> None:
        if self._complete and self._source_lost_at is None:
            self._source_lost_at = time.monotonic()

    def is_current(self) -> bool:
        lost_at = self._source_lost_at
        return self._complete and (lost_at is None or time.monotonic() - lost_at < self._max_staleness)

    def ensure_current(self) -> None:
        if not self._complete:
            raise VerificationUnavailable("revocations are not loaded yet; retry shortly")
        if not self.is_current():
            raise VerificationUnavailable("revocations are not current: the auth service is unreachable")

    def is_revoked(self, session_id: UUID) -> bool:
        """Whether the session has ended; VerificationUnavailable when that cannot be known."""
        self.ensure_current()
        until = self._until.get(session_id)
        if until is None:
            return False
        if until <= datetime.now(UTC):
            del self._until[session_id]
            return False
        return True


async def follow_revocations(channel: grpc.aio.Channel, credentials: CredentialSource, revoked: RevocationList) -> None:
    """Keeps revoked in step with auth, reconnecting until cancelled."""
    stub = auth_service_pb2_grpc.AuthInternalServiceStub(channel)
    while True:
        stream = stub.WatchRevocations(
            auth_service_pb2.WatchRevocationsRequest(), metadata=tuple(await credentials()), wait_for_ready=True
        )
        try:
            await _apply_stream(stream, revoked)
            log.warning("revocation stream ended")
        except grpc.aio.AioRpcError as error:
            log.warning("revocation stream interrupted: %s", error.code().name)
        except TimeoutError:
            log.warning("revocation stream silent for %ss; reconnecting", SILENCE_LIMIT_SECONDS)
        except (ValueError, TypeError):
            log.error("malformed revocation event; reconnecting", exc_info=True)
        finally:
            stream.cancel()
            revoked.mark_source_lost()
        await asyncio.sleep(RECONNECT_PAUSE_SECONDS)


async def _apply_stream(stream: Any, revoked: RevocationList) -> None:
    while True:
        # Before the snapshot, waiting is for the channel; after it, silence means a dead peer.
        silence_limit = SILENCE_LIMIT_SECONDS if revoked.is_current() else None
        event = await asyncio.wait_for(stream.read(), silence_limit)
        if event is grpc.aio.EOF:
            return
        if event.HasField("snapshot_complete"):
            revoked.mark_complete()
        elif event.HasField("revoked"):
            revoked.revoke(UUID(event.revoked.session_id), event.revoked.revoked_until.ToDatetime(tzinfo=UTC))
