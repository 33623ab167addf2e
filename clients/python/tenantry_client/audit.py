"""Audit events for the tenant's trail in Tenantry, from an application.

Two ways in, one interface (`AuditIngest`), so the outbox relay takes either:

- `ApplicationAuditClient`: the audit service's public `BatchCreateAuditEvents`
  (`POST /api/v1/audit/events:batch`) for a caller holding `audit.write`. The
  tenant is the credential's, never the event's, so the client asks for the
  credential of each batch's tenant (an API key of that tenant with
  `audit.write`, or a token of a service account acting in it). Tenantry's own
  action namespaces are refused there.
- `AuditClient`: `AuditIngestService.AppendAuditEvents`, Tenantry's internal
  ingest with the internal API token, which takes the tenant from each event:
  for a backend run beside Tenantry by the same operator (the tickets example).

Both are idempotent by event id: a batch sent again after a lost answer stores
nothing twice. Write events through the outbox (outbox.py) rather than
directly, so an event exists exactly when the change it records committed.

    audit = ApplicationAuditClient("127.0.0.1:50053", credentials=api_key_per_tenant({tenant_id: key}))
    await audit.append(tenant_id, [AuditEvent("tickets.created", "ticket", ticket_id, tenant_id)])
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import grpc
from tenantry.audit.v1 import audit_pb2, audit_service_pb2, audit_service_pb2_grpc

from tenantry_client.credentials import CredentialSource, Metadata

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
    # "auth", "data", "admin", "security", "consent", "activity"; empty: unspecified.
    category: str = ""
    # "success" or "failure" (then error_message says why); empty: unspecified.
    outcome: str = ""
    error_message: str = ""
    session_id: str = ""
    # What the action was done to, if not the resource itself.
    target_type: str = ""
    target_id: str = ""
    target_name: str = ""

    def to_proto(self) -> audit_pb2.AuditEvent:
        event = audit_pb2.AuditEvent(
            id=str(self.id),
            tenant_id=str(self.tenant_id) if self.tenant_id else "",
            user_id=str(self.user_id) if self.user_id else "",
            action=self.action,
            resource_type=self.resource_type,
            resource_id=self.resource_id,
            ip_address=self.ip_address,
            user_agent=self.user_agent,
            request_id=self.request_id,
            **self._model_fields(),
        )
        event.details.update(self.details)
        event.created_at.FromDatetime(self.created_at)
        return event

    def to_application_proto(self) -> audit_service_pb2.ApplicationAuditEvent:
        """The event for BatchCreateAuditEvents: no tenant (the credential's); the user as its actor."""
        event = audit_service_pb2.ApplicationAuditEvent(
            id=str(self.id),
            action=self.action,
            resource_type=self.resource_type,
            resource_id=self.resource_id,
            actor_id=str(self.user_id) if self.user_id else "",
            ip_address=self.ip_address,
            user_agent=self.user_agent,
            request_id=self.request_id,
            **self._model_fields(),
        )
        event.details.update(self.details)
        event.created_at.FromDatetime(self.created_at)
        return event

    def _model_fields(self) -> dict[str, Any]:
        return {
            "category": audit_pb2.AuditCategory.Value(f"AUDIT_CATEGORY_{(self.category or 'unspecified').upper()}"),
            "outcome": audit_pb2.AuditOutcome.Value(f"AUDIT_OUTCOME_{(self.outcome or 'unspecified').upper()}"),
            "error_message": self.error_message,
            "session_id": self.session_id,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_name": self.target_name,
        }


def every_tenant(credentials: CredentialSource) -> TenantCredentials:
    """One credential for every tenant's events (the internal token today)."""

    async def metadata(tenant_id: UUID | None) -> Metadata:
        return await credentials()

    return metadata


def api_key_per_tenant(keys: Mapping[UUID, str]) -> TenantCredentials:
    """Each tenant's API key (with `audit.write`) as the credential for its events.

    A tenant without one raises LookupError: the relay keeps its events and
    retries, so they wait for a key rather than go to another tenant's trail."""

    async def metadata(tenant_id: UUID | None) -> Metadata:
        if tenant_id is None or tenant_id not in keys:
            raise LookupError(f"no audit credential for tenant {tenant_id}")
        return (("x-api-key", keys[tenant_id]),)

    return metadata


class AuditIngest(Protocol):
    async def append(self, tenant_id: UUID | None, events: Sequence[AuditEvent]) -> int:
        """Appends one tenant's events; how many were new."""


class _AuditChannel:
    """A channel to the audit service, and what both ingests check before sending a batch."""

    def __init__(self, audit_address: str, credentials: TenantCredentials) -> None:
        self._channel = grpc.aio.insecure_channel(audit_address)
        self._credentials = credentials

    async def _metadata(self, tenant_id: UUID | None, events: Sequence[AuditEvent]) -> tuple[tuple[str, str], ...]:
        if len(events) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} events per batch")
        if any(event.tenant_id != tenant_id for event in events):
            raise ValueError("every event of a batch must belong to its tenant")
        return tuple(await self._credentials(tenant_id))

    async def close(self) -> None:
        await self._channel.close()


class AuditClient(_AuditChannel):
    """Tenantry's internal ingest (see the module docstring)."""

    def __init__(self, audit_address: str, *, credentials: TenantCredentials) -> None:
        super().__init__(audit_address, credentials)
        self._ingest = audit_service_pb2_grpc.AuditIngestServiceStub(self._channel)

    async def append(self, tenant_id: UUID | None, events: Sequence[AuditEvent]) -> int:
        """Sends one tenant's events; how many were new."""
        metadata = await self._metadata(tenant_id, events)
        request = audit_service_pb2.AppendAuditEventsRequest(events=[event.to_proto() for event in events])
        reply = await self._ingest.AppendAuditEvents(request, metadata=metadata, timeout=10)
        return int(reply.appended)


class ApplicationAuditClient(_AuditChannel):
    """The audit service's public ingest for applications (see the module docstring)."""

    def __init__(self, audit_address: str, *, credentials: TenantCredentials) -> None:
        super().__init__(audit_address, credentials)
        self._audit = audit_service_pb2_grpc.AuditServiceStub(self._channel)

    async def append(self, tenant_id: UUID | None, events: Sequence[AuditEvent]) -> int:
        """Sends one tenant's events with that tenant's credential; how many the trail holds now."""
        metadata = await self._metadata(tenant_id, events)
        request = audit_service_pb2.BatchCreateAuditEventsRequest(
            events=[event.to_application_proto() for event in events]
        )
        reply = await self._audit.BatchCreateAuditEvents(request, metadata=metadata, timeout=10)
        return len(reply.receipts)
