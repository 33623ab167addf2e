"""The two RPCs. The tenant and the caller come from tenantry-client's context
(the verified access token); every query runs in a transaction bound to that
tenant, so row-level security filters it under the query's own tenant filter."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy import and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenantry_client.context import require_principal
from tenantry_client.outbox import AuditOutbox

from examples.tickets.contract import Contract
from examples.tickets.schema import tickets

CREATE_PERMISSION = "app.tickets.write"
LIST_PERMISSION = "app.tickets.read"
MAX_TITLE, MAX_DESCRIPTION = 200, 2000
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100


class InvalidArgument(Exception):
    pass


class TicketService:
    def __init__(self, contract: Contract, sessions: async_sessionmaker[AsyncSession], outbox: AuditOutbox) -> None:
        self._contract = contract
        self._sessions = sessions
        self._outbox = outbox

    async def create_ticket(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        principal = require_principal()
        tenant_id = principal.require_tenant()
        title, description = request.ticket.title.strip(), request.ticket.description
        if not title or len(title) > MAX_TITLE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"ticket.title: 1 to {MAX_TITLE} characters")
        if len(description) > MAX_DESCRIPTION:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"ticket.description: at most {MAX_DESCRIPTION}")
        row = {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "title": title,
            "description": description,
            "reporter_id": principal.user_id,
            "created_at": datetime.now(UTC),
        }
        # The ticket and its audit event commit together, or neither does.
        async with self._sessions() as session, session.begin():
            await session.execute(insert(tickets).values(**row))
            await self._outbox.record(
                session,
                action="tickets.created",
                resource_type="ticket",
                resource_id=row["id"],
                details={"title": title},
                category="data",
                outcome="success",
                request_id=_request_id(context),
            )
        return self._ticket(row)

    async def list_tickets(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        tenant_id = require_principal().require_tenant()
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"page_size: 0 to {MAX_PAGE_SIZE}")
        size = request.page_size or DEFAULT_PAGE_SIZE
        query = (
            select(tickets)
            .where(tickets.c.tenant_id == tenant_id)
            .order_by(tickets.c.created_at.desc(), tickets.c.id.desc())
            .limit(size + 1)
        )
        if request.page_token:
            try:
                after_time, after_id = _decode_token(request.page_token)
            except InvalidArgument:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token: not one this service issued")
            query = query.where(
                or_(
                    tickets.c.created_at < after_time,
                    and_(tickets.c.created_at == after_time, tickets.c.id < after_id),
                )
            )
        async with self._sessions() as session, session.begin():
            rows = [row._asdict() for row in (await session.execute(query)).all()]
        page, more = rows[:size], len(rows) > size
        return self._contract.message("ListTicketsResponse")(
            tickets=[self._ticket(row) for row in page],
            next_page_token=_encode_token(page[-1]) if more else "",
        )

    def _ticket(self, row: dict[str, Any]) -> Any:
        ticket = self._contract.message("Ticket")(
            id=str(row["id"]),
            title=row["title"],
            description=row["description"],
            reporter_id=str(row["reporter_id"]),
        )
        ticket.create_time.FromDatetime(row["created_at"])
        return ticket


def _request_id(context: grpc.aio.ServicerContext) -> str | None:
    return next((value for key, value in context.invocation_metadata() or () if key == "x-request-id"), None)


def _encode_token(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(f"{row['created_at'].isoformat()}|{row['id']}".encode()).decode()


def _decode_token(token: str) -> tuple[datetime, uuid.UUID]:
    try:
        when, _, ticket_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        after = datetime.fromisoformat(when)
        if after.tzinfo is None:
            raise ValueError("naive time")
        return after, uuid.UUID(ticket_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("page_token") from None
