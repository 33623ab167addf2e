"""All SQL of system settings (row-level security decides what a scope sees)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, DateTime, String, delete, func, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.tenants.models import Base


class SystemSettingRow(Base):
    __tablename__ = "system_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB(none_as_null=False))
    description: Mapped[str] = mapped_column(String(1000))
    is_public: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[UUID | None]


async def list_visible(session: AsyncSession) -> list[SystemSettingRow]:
    return list((await session.execute(select(SystemSettingRow).order_by(SystemSettingRow.key))).scalars())


async def find(session: AsyncSession, key: str) -> SystemSettingRow | None:
    return (await session.execute(select(SystemSettingRow).where(SystemSettingRow.key == key))).scalar_one_or_none()


async def count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(SystemSettingRow))).scalar_one())


async def insert_new(session: AsyncSession, values: dict[str, Any]) -> SystemSettingRow | None:
    """The new row, or None when the key exists."""
    statement = (
        insert(SystemSettingRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(SystemSettingRow)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def change(session: AsyncSession, key: str, changes: dict[str, Any]) -> SystemSettingRow | None:
    statement = (
        update(SystemSettingRow).where(SystemSettingRow.key == key).values(**changes).returning(SystemSettingRow)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def remove(session: AsyncSession, key: str) -> bool:
    result = await session.execute(delete(SystemSettingRow).where(SystemSettingRow.key == key))
    return bool(result.rowcount)  # type: ignore[attr-defined]
