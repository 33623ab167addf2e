"""The email delivery log: a tenant's own, and everyone's for platform operators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import Principal
from kit.error_details import Reason
from kit.errors import PermissionDenied
from kit.pagination import one_page
from services.auth.models import EmailMessage
from services.auth.repository import emails
from services.auth.service.tenancy import tenant_of


@dataclass(frozen=True)
class EmailPage:
    emails: list[EmailMessage]
    next_page_token: str


async def list_emails(
    session: AsyncSession,
    principal: Principal,
    *,
    every_tenant: bool,
    before: tuple[datetime, UUID] | None,
    page_size: int,
) -> EmailPage:
    """The caller's tenant's log, or (every_tenant, operators only) everyone's."""
    if every_tenant and not principal.is_platform_admin:
        raise PermissionDenied(
            "the delivery log of every tenant is for platform operators", reason=Reason.PLATFORM_OPERATOR_REQUIRED
        )
    # For operators, the platform scope their unit of work binds is what lets
    # every tenant's rows through row-level security.
    tenant_id = None if every_tenant else tenant_of(principal)
    rows = await emails.list_emails(session, tenant_id=tenant_id, before=before, limit=page_size + 1)
    return EmailPage(*one_page(rows, page_size, lambda row: (row.created_at, row.id)))
