"""Use cases of the audit trail: validated appends and tenant-scoped reads."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import PLATFORM_SCOPE, Database, bind_scope
from kit.errors import InvalidArgument
from kit.pagination import one_page
from services.audit import repository
from services.audit.models import AuditEventRow
from services.audit.repository import EventFilter

MAX_BATCH = 500
_PARTITION_MISSING = "no partition of relation"


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEventRow]
    next_page_token: str


def validate_event(index: int, event: dict[str, Any]) -> dict[str, Any]:
    """Checks one incoming event; errors name the event's index and field."""

    def fail(field: str, problem: str) -> InvalidArgument:
        return InvalidArgument(f"events[{index}].{field}", problem)

    for field, limit in (("action", 100), ("resource_type", 100), ("resource_id", 200)):
        if not event[field]:
            raise fail(field, "is required")
        if len(event[field]) > limit:
            raise fail(field, f"must be at most {limit} characters")
    if event["created_at"] is None:
        raise fail("created_at", "is required")
    if event["ip_address"]:
        try:
            ipaddress.ip_address(event["ip_address"])
        except ValueError:
            raise fail("ip_address", "is not an IP address") from None
    if event["user_agent"] and len(event["user_agent"]) > 512:
        event["user_agent"] = event["user_agent"][:512]
    if event["request_id"] and len(event["request_id"]) > 128:
        raise fail("request_id", "must be at most 128 characters")
    return event


class AuditTrail:
    def __init__(self, database: Database, *, months_ahead: int) -> None:
        self._database = database
        self._months_ahead = months_ahead

    async def append(self, events: list[dict[str, Any]]) -> int:
        if len(events) > MAX_BATCH:
            raise InvalidArgument("events", f"at most {MAX_BATCH} per batch")
        if not events:
            return 0
        checked = [validate_event(index, event) for index, event in enumerate(events)]
        try:
            return await self._insert_by_tenant(checked)
        except IntegrityError as error:
            if _PARTITION_MISSING not in str(error.orig):
                raise
        # An event for a month without a partition yet (an outbox that waited
        # long, a clock far ahead): make the months it needs and try again.
        months = sorted({date(event["created_at"].year, event["created_at"].month, 1) for event in checked})
        async with self._database.unit_of_work(scope="") as session:
            for month in months:
                await repository.ensure_monthly_partitions(session, month, 1)
        return await self._insert_by_tenant(checked)

    async def _insert_by_tenant(self, events: list[dict[str, Any]]) -> int:
        """One transaction; each tenant's events inserted under that tenant's scope."""
        by_scope: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in events:
            by_scope[str(event["tenant_id"]) if event["tenant_id"] else PLATFORM_SCOPE].append(event)
        appended = 0
        async with self._database.unit_of_work(scope="") as session:
            for scope, group in by_scope.items():
                await bind_scope(session, tenant=scope)
                appended += await repository.insert_events(session, group)
        return appended

    async def ensure_partitions(self) -> int:
        async with self._database.unit_of_work(scope="") as session:
            return await repository.ensure_monthly_partitions(session, datetime.now(UTC).date(), self._months_ahead + 1)

    async def list(self, session: AsyncSession, where: EventFilter, page_size: int) -> EventPage:
        rows = await repository.list_events(session, where, page_size + 1)
        return EventPage(*one_page(rows, page_size, lambda row: (row.created_at, row.id)))
