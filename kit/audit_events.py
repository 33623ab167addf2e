"""One audit event as the contract carries it, from any row with the event's columns
(an outbox row on its way, or a stored event on its way out)."""

from __future__ import annotations

from typing import Any

from tenantry.audit.v1 import audit_pb2

from kit.convert import struct, timestamp


def to_audit_event(row: Any) -> audit_pb2.AuditEvent:
    return audit_pb2.AuditEvent(
        id=str(row.id),
        tenant_id=str(row.tenant_id) if row.tenant_id else "",
        user_id=str(row.user_id) if row.user_id else "",
        action=row.action,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        details=struct(row.details),
        ip_address=str(row.ip_address) if row.ip_address else "",
        user_agent=row.user_agent or "",
        request_id=row.request_id or "",
        created_at=timestamp(row.created_at),
        sequence=getattr(row, "sequence", None) or 0,
    )
