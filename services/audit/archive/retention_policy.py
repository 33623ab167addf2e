"""Each tenant's audit retention, kept by the audit service that enforces it.

The setting lives in the audit schema (`audit.retention_policies`, row-level
security per tenant), not in the tenants service's settings: the daily run
reads every tenant's value without calling another service, and a change is
written in the same transaction as its own audit event in the tenant's trail.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from tenantry.audit.v1 import audit_pb2

from kit.context import current_principal, current_request
from kit.db import PLATFORM_SCOPE, Database
from kit.errors import InvalidArgument
from services.audit import repository
from services.audit.api import event_values
from services.audit.event_model import ACTOR_TYPE_NUMBERS, USER
from services.audit.service import chain_and_insert

MAX_MONTHS = 1200
ACTION = "audit.retention.updated"


async def retention_of(session: AsyncSession) -> dict[str, int]:
    """Every scope's own setting (under the retention binding)."""
    rows = await session.execute(text("SELECT scope, months FROM audit.retention_policies"))
    return {str(scope): int(months) for scope, months in rows}


class RetentionPolicies:
    def __init__(self, database: Database, chain_key: bytes, platform_default: int) -> None:
        self._database = database
        self._chain_key = chain_key
        self.platform_default = platform_default

    async def get(self, scope: str) -> int:
        async with self._database.unit_of_work(scope=scope) as session:
            found = await session.execute(
                text("SELECT months FROM audit.retention_policies WHERE scope = :scope"), {"scope": scope}
            )
            return int(found.scalar_one_or_none() or 0)

    async def set(self, scope: str, months: int) -> int:
        """Sets (or with 0 clears) the scope's retention and appends the change to its trail, in one transaction."""
        if not 0 <= months <= MAX_MONTHS:
            raise InvalidArgument("months", f"must be between 0 (the platform default) and {MAX_MONTHS}")
        event = event_values(0, self._event(scope, months))
        async with self._database.unit_of_work(scope="") as session:
            # Binds the scope and locks its chain head, as every append does.
            sequence, previous, _ = await repository.open_chain_for_append(
                session, scope, [event["id"]], [event["created_at"].isoformat(timespec="microseconds")]
            )
            if months:
                await session.execute(
                    text(
                        "INSERT INTO audit.retention_policies (scope, months) VALUES (:scope, :months) "
                        "ON CONFLICT (scope) DO UPDATE SET months = excluded.months, updated_at = now()"
                    ),
                    {"scope": scope, "months": months},
                )
            else:
                await session.execute(
                    text("DELETE FROM audit.retention_policies WHERE scope = :scope"), {"scope": scope}
                )
            await chain_and_insert(session, self._chain_key, scope, [event], (sequence, previous))
        return months

    def _event(self, scope: str, months: int) -> audit_pb2.AuditEvent:
        principal, request = current_principal(), current_request()
        event = audit_pb2.AuditEvent(
            id=str(uuid.uuid4()),
            tenant_id="" if scope == PLATFORM_SCOPE else scope,
            # A machine identity's id is its actor's, not a user's.
            user_id=str(principal.user_id) if principal and principal.actor_type == USER else "",
            action=ACTION,
            resource_type="audit_retention",
            resource_id=scope,
            ip_address=(request.peer_ip if request else None) or "",
            user_agent=(request.user_agent if request else None) or "",
            request_id=request.request_id if request else "",
            category=audit_pb2.AUDIT_CATEGORY_ADMIN,
            outcome=audit_pb2.AUDIT_OUTCOME_SUCCESS,
            target_type="audit_retention",
            target_id=scope,
        )
        if principal is not None:
            event.actor_type = ACTOR_TYPE_NUMBERS.get(principal.actor_type, audit_pb2.AUDIT_ACTOR_TYPE_USER)  # type: ignore[assignment]
            event.actor_id = str(principal.user_id)
            event.session_id = str(principal.session_id)
        event.details.update({"months": months, "platform_default_months": self.platform_default})
        event.created_at.FromDatetime(datetime.now(UTC))
        return event
