"""The email delivery log servicer: proto <-> domain, one thin method per RPC."""

from __future__ import annotations

import grpc
from tenantry.auth.v1 import emails_service_pb2, emails_service_pb2_grpc

from kit.context import require_principal
from kit.convert import timestamp
from kit.db import Database
from kit.pagination import decode_cursor, page_size
from services.auth.models import EmailMessage
from services.auth.service import email_log

EMAIL_STATUSES = {
    "queued": emails_service_pb2.EMAIL_STATUS_QUEUED,
    "sent": emails_service_pb2.EMAIL_STATUS_SENT,
    "failed": emails_service_pb2.EMAIL_STATUS_FAILED,
}


def email_message(row: EmailMessage) -> emails_service_pb2.Email:
    message = emails_service_pb2.Email(
        id=str(row.id),
        tenant_id=str(row.tenant_id) if row.tenant_id else "",
        recipient=row.recipient,
        template=row.template,
        language=row.language,
        status=EMAIL_STATUSES[row.status],
        attempts=row.attempts,
        last_error=row.last_error or "",
        created_at=timestamp(row.created_at),
    )
    if row.sent_at is not None:
        message.sent_at.CopyFrom(timestamp(row.sent_at))
    if row.next_attempt_at is not None and row.status == "queued":
        message.next_attempt_at.CopyFrom(timestamp(row.next_attempt_at))
    return message


class EmailApi(emails_service_pb2_grpc.EmailServiceServicer):
    def __init__(self, database: Database) -> None:
        self._database = database

    async def ListEmails(
        self, request: emails_service_pb2.ListEmailsRequest, context: grpc.aio.ServicerContext
    ) -> emails_service_pb2.ListEmailsResponse:
        return await self._page(request.page_size, request.page_token, every_tenant=False)

    async def ListAllEmails(
        self, request: emails_service_pb2.ListAllEmailsRequest, context: grpc.aio.ServicerContext
    ) -> emails_service_pb2.ListEmailsResponse:
        return await self._page(request.page_size, request.page_token, every_tenant=True)

    async def _page(
        self, requested_size: int, page_token: str, *, every_tenant: bool
    ) -> emails_service_pb2.ListEmailsResponse:
        size = page_size(requested_size)
        before = decode_cursor(page_token)
        async with self._database.unit_of_work() as session:
            page = await email_log.list_emails(
                session, require_principal(), every_tenant=every_tenant, before=before, page_size=size
            )
        return emails_service_pb2.ListEmailsResponse(
            emails=[email_message(row) for row in page.emails], next_page_token=page.next_page_token
        )
