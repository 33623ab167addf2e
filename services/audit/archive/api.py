"""The export and retention servicer: proto <-> domain, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.api import httpbody_pb2
from tenantry.audit.v1 import audit_export_service_pb2, audit_export_service_pb2_grpc

from kit.context import require_principal, tenant_required
from kit.convert import from_timestamp
from kit.db import scope_of_caller
from kit.errors import InvalidArgument
from services.audit.archive.lines import CONTENT_TYPES, FORMATS, NDJSON, Encoder
from services.audit.archive.retention_policy import RetentionPolicies
from services.audit.archive.stretch import StretchReader

# Lines are sent in chunks of about this many bytes: few messages, little held at once.
CHUNK_BYTES = 64 * 1024


def _caller_scope() -> str:
    require_principal()
    scope = scope_of_caller()
    if not scope:
        raise tenant_required()
    return scope


class AuditExportApi(audit_export_service_pb2_grpc.AuditExportServiceServicer):
    def __init__(self, stretches: StretchReader, retention: RetentionPolicies) -> None:
        self._stretches = stretches
        self._retention = retention

    async def ExportAuditEvents(  # type: ignore[override]
        self, request: audit_export_service_pb2.ExportAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        scope = _caller_scope()
        format = request.format.lower() or NDJSON
        if format not in FORMATS:
            raise InvalidArgument("format", f"must be one of {', '.join(FORMATS)}")
        start = from_timestamp(request.start_time) if request.HasField("start_time") else None
        end = from_timestamp(request.end_time) if request.HasField("end_time") else None
        if start and end and start >= end:
            raise InvalidArgument("end_time", "must be after start_time")
        stretch = await self._stretches.by_time(scope, start, end)
        encoder, content_type = Encoder(format), CONTENT_TYPES[format]
        chunk: list[bytes] = []
        size = 0
        async for line in self._stretches.lines(stretch):
            encoded = encoder.encode(line)
            chunk.append(encoded)
            size += len(encoded)
            if size >= CHUNK_BYTES:
                yield httpbody_pb2.HttpBody(content_type=content_type, data=b"".join(chunk))
                chunk, size = [], 0
        yield httpbody_pb2.HttpBody(content_type=content_type, data=b"".join(chunk))

    async def GetAuditRetention(
        self, request: audit_export_service_pb2.GetAuditRetentionRequest, context: grpc.aio.ServicerContext
    ) -> audit_export_service_pb2.AuditRetention:
        return self._to_message(await self._retention.get(_caller_scope()))

    async def UpdateAuditRetention(
        self, request: audit_export_service_pb2.UpdateAuditRetentionRequest, context: grpc.aio.ServicerContext
    ) -> audit_export_service_pb2.AuditRetention:
        return self._to_message(await self._retention.set(_caller_scope(), request.months))

    def _to_message(self, months: int) -> audit_export_service_pb2.AuditRetention:
        default = self._retention.platform_default
        return audit_export_service_pb2.AuditRetention(
            months=months, platform_default_months=default, effective_months=months or default
        )
