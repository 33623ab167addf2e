"""The email delivery log: a tenant's own, and everyone's for platform operators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.errors import PermissionDenied
from kit.pagination import one_page
from services.auth.models import EmailMessage
from services.auth.repository import emails
from services.auth.service.tenancy import tenant_of


@dataclass(frozen=True)
class EmailPage:
    emails: list[EmailMessage]
    next_page_token: str


async def list_tenant_emails(
    session: AsyncSession, principal: Principal, *, before: tuple[datetime, UUID] | None, page_size: int
) -> EmailPage:
    rows = await emails.list_emails(session, tenant_id=tenant_of(principal), before=before, limit=page_size + 1)
    return EmailPage(*one_page(rows, page_size, lambda row: (row.created_at, row.id)))


async def list_all_emails(
    session: AsyncSession, principal: Principal, *, before: tuple[datetime, UUID] | None, page_size: int
) -> EmailPage:
    # The contract asks for platform.emails.read; the platform scope the unit of
    # work binds for operators is what lets the rows through row-level security.
    if not principal.is_platform_admin:
        raise PermissionDenied("the delivery log of every tenant is for platform operators")
    rows = await emails.list_emails(session, tenant_id=None, before=before, limit=page_size + 1)
    return EmailPage(*one_page(rows, page_size, lambda row: (row.created_at, row.id)))
