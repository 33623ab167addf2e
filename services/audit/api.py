"""The audit servicers: proto <-> domain, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from tenantry.audit.v1 import audit_pb2, audit_service_pb2, audit_service_pb2_grpc

from kit.context import current_principal, require_principal, tenant_required
from kit.convert import from_timestamp, parse_uuid, timestamp
from kit.db import Database, scope_of_caller
from kit.errors import InvalidArgument
from kit.pagination import decode_cursor, page_size
from services.audit import application_ingest
from services.audit.checkpoints import ALGORITHM, Checkpoint, CheckpointKey
from services.audit.event_model import (
    ACTOR_TYPES,
    OUTCOMES,
    category_filter,
    enum_name,
    event_fields,
    lift_from_details,
    stored_event,
    uuid_text,
)
from services.audit.repository import EventFilter
from services.audit.service import AuditTrail

# The category of account events (logins, resets, sessions), which each person may read of their own.
AUTH_CATEGORY = "auth"


def event_values(index: int, event: audit_pb2.AuditEvent) -> dict[str, Any]:
    """An event from Tenantry's own services, as the internal ingest receives it."""
    prefix = f"events[{index}]."
    values = event_fields(prefix, event)
    # Set one by one rather than by update(**...): this runs for every event ingested.
    values["tenant_id"] = uuid_text(prefix + "tenant_id", event.tenant_id, required=False)
    values["user_id"] = uuid_text(prefix + "user_id", event.user_id, required=False)
    values["actor_type"] = enum_name(ACTOR_TYPES, prefix + "actor_type", event.actor_type)
    values["actor_id"] = event.actor_id or None
    values["recorded_by_type"] = enum_name(ACTOR_TYPES, prefix + "recorded_by_type", event.recorded_by_type)
    values["recorded_by_id"] = event.recorded_by_id or None
    lift_from_details(values)
    return values


def to_checkpoint(checkpoint: Checkpoint) -> audit_pb2.AuditCheckpoint:
    return audit_pb2.AuditCheckpoint(
        scope=checkpoint.scope,
        sequence=checkpoint.sequence,
        head_hash=checkpoint.head_hash.hex(),
        created_at=timestamp(checkpoint.created_at),
        key_id=checkpoint.key_id,
        signature=checkpoint.signature,
        signed_payload=checkpoint.payload,
    )


class AuditApi(audit_service_pb2_grpc.AuditServiceServicer):
    def __init__(self, database: Database, trail: AuditTrail, checkpoint_key: CheckpointKey) -> None:
        self._database = database
        self._trail = trail
        self._checkpoint_key = audit_pb2.AuditCheckpointKey(
            key_id=checkpoint_key.key_id, algorithm=ALGORITHM, public_key=checkpoint_key.public_key
        )

    async def ListAuditEvents(
        self, request: audit_service_pb2.ListAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> audit_service_pb2.ListAuditEventsResponse:
        scope = scope_of_caller()
        if not scope or current_principal() is None:
            raise tenant_required()
        where = EventFilter(
            scope=scope,
            action=request.action or None,
            resource_type=request.resource_type or None,
            user_id=parse_uuid("user_id", request.user_id, required=False),
            category=category_filter(request.category),
            outcome=enum_name(OUTCOMES, "outcome", request.outcome),
            actor_type=enum_name(ACTOR_TYPES, "actor_type", request.actor_type),
            actor_id=request.actor_id or None,
            session_id=request.session_id or None,
            target_type=request.target_type or None,
            target_id=request.target_id or None,
            start_time=from_timestamp(request.start_time) if request.HasField("start_time") else None,
            end_time=from_timestamp(request.end_time) if request.HasField("end_time") else None,
            after=decode_cursor(request.page_token),
        )
        if where.start_time and where.end_time and where.start_time >= where.end_time:
            raise InvalidArgument("end_time", "must be after start_time")
        size = page_size(request.page_size, maximum=200)
        async with self._database.unit_of_work() as session:
            page = await self._trail.list(session, where, size)
        return audit_service_pb2.ListAuditEventsResponse(
            events=[stored_event(row) for row in page.events], next_page_token=page.next_page_token
        )

    async def ListMyAuditEvents(
        self, request: audit_service_pb2.ListMyAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> audit_service_pb2.ListAuditEventsResponse:
        principal = require_principal()
        scope = scope_of_caller()
        if not scope:
            raise tenant_required()
        where = EventFilter(
            scope=scope,
            user_id=principal.user_id,
            category=AUTH_CATEGORY,
            with_tenantless=True,
            after=decode_cursor(request.page_token),
        )
        size = page_size(request.page_size, maximum=200)
        async with self._database.unit_of_work() as session:
            page = await self._trail.list_own(session, principal.user_id, where, size)
        return audit_service_pb2.ListAuditEventsResponse(
            events=[stored_event(row) for row in page.events], next_page_token=page.next_page_token
        )

    async def VerifyAuditTrail(
        self, request: audit_service_pb2.VerifyAuditTrailRequest, context: grpc.aio.ServicerContext
    ) -> audit_service_pb2.VerifyAuditTrailResponse:
        scope = scope_of_caller()
        if not scope:
            raise tenant_required()
        async with self._database.unit_of_work() as session:
            result = await self._trail.verify(session, scope)
        return audit_service_pb2.VerifyAuditTrailResponse(
            intact=result.intact,
            events_checked=result.events_checked,
            first_broken_event_id=result.first_broken_event_id,
            first_broken_sequence=result.first_broken_sequence,
            problem=result.problem,
            latest_checkpoint=to_checkpoint(result.checkpoint) if result.checkpoint else None,
            checkpoint_key=self._checkpoint_key,
        )

    async def BatchCreateAuditEvents(
        self, request: audit_service_pb2.BatchCreateAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> audit_service_pb2.BatchCreateAuditEventsResponse:
        principal = require_principal()
        if principal.tenant_id is None:
            raise tenant_required()
        caller = application_ingest.caller_of(principal)
        events = application_ingest.application_events(request, principal.tenant_id, caller, datetime.now(UTC))
        receipts = await self._trail.append_for_application(principal.tenant_id, events)
        return audit_service_pb2.BatchCreateAuditEventsResponse(
            receipts=[audit_service_pb2.AuditEventReceipt(id=str(event_id), sequence=seq) for event_id, seq in receipts]
        )


class AuditIngestApi(audit_service_pb2_grpc.AuditIngestServiceServicer):
    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail

    async def AppendAuditEvents(
        self, request: audit_service_pb2.AppendAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> audit_service_pb2.AppendAuditEventsResponse:
        events = [event_values(index, event) for index, event in enumerate(request.events)]
        return audit_service_pb2.AppendAuditEventsResponse(appended=await self._trail.append(events))
