"""Audit events for the tenant's trail in Tenantry, from an application.

    audit = AuditClient("127.0.0.1:50053", credentials=every_tenant(internal_token(…)))
    await audit.append(tenant_id, [AuditEvent("tickets.created", "ticket", ticket_id, tenant_id)])

Appending is idempotent by event id: a batch sent again after a lost answer
stores nothing twice. Write events through the outbox (outbox.py) rather than
directly, so an event exists exactly when the change it records committed.

Today this calls the audit service's AuditIngestService.AppendAuditEvents,
Tenantry's internal ingest, with the internal API token; that RPC takes the
tenant from each event. Tenantry's public ingest for applications (a caller
with `audit.write`, the tenant taken from the credential) is the
`AuditIngest` to use once it exists: it is why the relay sends one tenant per
batch and asks for the credential per tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import grpc
from google.protobuf import struct_pb2, timestamp_pb2
from tenantry.audit.v1 import audit_pb2, audit_service_pb2, audit_service_pb2_grpc

from tenantry_client.revocations import CredentialSource, Metadata

# The ingest refuses a larger batch.
MAX_BATCH = 500

# The credential for sending one tenant's events (None: platform-level events).
TenantCredentials = Callable[[UUID | None], Awaitable[Metadata]]


@dataclass(frozen=True)
class AuditEvent:
    action: str
    resource_type: str
    resource_id: str
    tenant_id: UUID | None
    user_id: UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: UUID = field(default_factory=uuid.uuid4)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ip_address: str = ""
    user_agent: str = ""
    request_id: str = ""

    def to_proto(self) -> audit_pb2.AuditEvent:
        details = struct_pb2.Struct()
        details.update(self.details)
        created_at = timestamp_pb2.Timestamp()
        created_at.FromDatetime(self.created_at)
        return audit_pb2.AuditEvent(
            id=str(self.id),
            tenant_id=str(self.tenant_id) if self.tenant_id else "",
            user_id=str(self.user_id) if self.user_id else "",
            action=self.action,
            resource_type=self.resource_type,
            resource_id=self.resource_id,
            details=details,
            ip_address=self.ip_address,
            user_agent=self.user_agent,
            request_id=self.request_id,
            created_at=created_at,
        )


def every_tenant(credentials: CredentialSource) -> TenantCredentials:
    """One credential for every tenant's events (the internal token today)."""

    async def metadata(tenant_id: UUID | None) -> Metadata:
        return await credentials()

    return metadata


class AuditIngest(Protocol):
    async def append(self, tenant_id: UUID | None, events: Sequence[AuditEvent]) -> int:
        """Appends one tenant's events; how many were new."""


class AuditClient:
    """The audit service's ingest (see the module docstring for which RPC)."""

    def __init__(self, audit_address: str, *, credentials: TenantCredentials) -> None:
        self._channel = grpc.aio.insecure_channel(audit_address)
        self._ingest = audit_service_pb2_grpc.AuditIngestServiceStub(self._channel)
        self._credentials = credentials

    async def append(self, tenant_id: UUID | None, events: Sequence[AuditEvent]) -> int:
        if len(events) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} events per batch")
        if any(event.tenant_id != tenant_id for event in events):
            raise ValueError("every event of a batch must belong to its tenant")
        request = audit_service_pb2.AppendAuditEventsRequest(events=[event.to_proto() for event in events])
        metadata = tuple(await self._credentials(tenant_id))
        reply = await self._ingest.AppendAuditEvents(request, metadata=metadata, timeout=10)
        return int(reply.appended)

    async def close(self) -> None:
        await self._channel.close()
