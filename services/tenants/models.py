"""The tenants schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kit.outbox import outbox_table

SCHEMA = "tenants"
DB_ROLE = "tenantry_tenants"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


outbox = outbox_table(Base.metadata)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    subscription_tier: Mapped[str] = mapped_column(String(20))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    is_active: Mapped[bool]
    # Who the creating request named as owner, so that its retry is
    # recognised; the tenant is usable once provisioned_at is set.
    owner_email: Mapped[str] = mapped_column(String(254))
    provisioned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
