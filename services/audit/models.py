"""The audit schema. DDL lives in the migrations (partitioning, triggers, policies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, DateTime, LargeBinary, SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "audit"
DB_ROLE = "tenantry_audit"


class Base(DeclarativeBase):
    pass


class AuditEventRow(Base):
    __tablename__ = "events"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    tenant_id: Mapped[UUID | None]
    user_id: Mapped[UUID | None]
    action: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str] = mapped_column(String(100))
    resource_id: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default="now()")
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    chain_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Which fields chain_hash covers (services.audit.chain): 1 for events appended before the model grew.
    chain_format: Mapped[int] = mapped_column(SmallInteger)
    # Lowercase names of AuditCategory, AuditOutcome and AuditActorType without their prefix ("auth").
    category: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(String(10))
    error_message: Mapped[str | None] = mapped_column(String(1000))
    session_id: Mapped[str | None] = mapped_column(String(128))
    actor_type: Mapped[str | None] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(200))
    target_type: Mapped[str | None] = mapped_column(String(100))
    target_id: Mapped[str | None] = mapped_column(String(200))
    target_name: Mapped[str | None] = mapped_column(String(200))
    recorded_by_type: Mapped[str | None] = mapped_column(String(20))
    recorded_by_id: Mapped[str | None] = mapped_column(String(200))


class ChainHead(Base):
    __tablename__ = "chain_heads"
    __table_args__ = {"schema": SCHEMA}

    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    chain_hash: Mapped[bytes] = mapped_column(LargeBinary)
