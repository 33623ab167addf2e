"""Service accounts, their credentials and used client assertions: all scoped by
tenant (or the platform), under row-level security on the bound scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import ClientAssertion, ServiceAccount, ServiceAccountCredential


def _in_scope(column: Any, tenant_id: UUID | None) -> Any:
    return column.is_(None) if tenant_id is None else column == tenant_id


async def _insert_unique(session: AsyncSession, row: ServiceAccount | ServiceAccountCredential) -> bool:
    """False when a unique index refuses the row (the transaction carries on)."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def insert_account(session: AsyncSession, account: ServiceAccount) -> bool:
    """False when the scope already has an account of that name."""
    return await _insert_unique(session, account)


async def list_accounts(session: AsyncSession, tenant_id: UUID | None) -> list[ServiceAccount]:
    rows = await session.execute(
        select(ServiceAccount).where(_in_scope(ServiceAccount.tenant_id, tenant_id)).order_by(ServiceAccount.name)
    )
    return list(rows.scalars())


async def find_account(
    session: AsyncSession, tenant_id: UUID | None, account_id: UUID, *, lock: bool = False
) -> ServiceAccount | None:
    query = select(ServiceAccount).where(
        ServiceAccount.id == account_id, _in_scope(ServiceAccount.tenant_id, tenant_id)
    )
    return (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()


async def find_account_by_name(session: AsyncSession, tenant_id: UUID | None, name: str) -> ServiceAccount | None:
    return (
        await session.execute(
            select(ServiceAccount).where(ServiceAccount.name == name, _in_scope(ServiceAccount.tenant_id, tenant_id))
        )
    ).scalar_one_or_none()


async def set_permissions(session: AsyncSession, account_id: UUID, permissions: list[str]) -> None:
    await session.execute(update(ServiceAccount).where(ServiceAccount.id == account_id).values(permissions=permissions))


async def delete_account(session: AsyncSession, account_id: UUID) -> None:
    await session.execute(delete(ServiceAccount).where(ServiceAccount.id == account_id))


async def credentials_of(session: AsyncSession, account_ids: list[UUID]) -> list[ServiceAccountCredential]:
    if not account_ids:
        return []
    rows = await session.execute(
        select(ServiceAccountCredential)
        .where(ServiceAccountCredential.account_id.in_(account_ids))
        .order_by(ServiceAccountCredential.created_at)
    )
    return list(rows.scalars())


async def count_credentials(session: AsyncSession, account_id: UUID) -> int:
    return int(
        (
            await session.execute(select(func.count()).where(ServiceAccountCredential.account_id == account_id))
        ).scalar_one()
    )


async def insert_credential(session: AsyncSession, credential: ServiceAccountCredential) -> bool:
    """False when the account already has a key with that kid."""
    return await _insert_unique(session, credential)


async def delete_credentials(
    session: AsyncSession,
    account_id: UUID,
    *,
    credential_id: UUID | None = None,
    type_: str | None = None,
    keep: UUID | None = None,
) -> list[UUID]:
    """Deletes the account's credentials matching the filters; returns their ids."""
    query = delete(ServiceAccountCredential).where(ServiceAccountCredential.account_id == account_id)
    if credential_id is not None:
        query = query.where(ServiceAccountCredential.id == credential_id)
    if type_ is not None:
        query = query.where(ServiceAccountCredential.type == type_)
    if keep is not None:
        query = query.where(ServiceAccountCredential.id != keep)
    rows = await session.execute(query.returning(ServiceAccountCredential.id))
    return [row[0] for row in rows]


async def find_secret(session: AsyncSession, account_id: UUID, secret_hash: bytes) -> ServiceAccountCredential | None:
    return (
        await session.execute(
            select(ServiceAccountCredential).where(
                ServiceAccountCredential.account_id == account_id,
                ServiceAccountCredential.secret_hash == secret_hash,
            )
        )
    ).scalar_one_or_none()


async def public_keys(session: AsyncSession, account_id: UUID) -> list[ServiceAccountCredential]:
    rows = await session.execute(
        select(ServiceAccountCredential).where(
            ServiceAccountCredential.account_id == account_id, ServiceAccountCredential.type == "public_key"
        )
    )
    return list(rows.scalars())


async def touch_credential(session: AsyncSession, credential_id: UUID, now: datetime) -> None:
    await session.execute(
        update(ServiceAccountCredential).where(ServiceAccountCredential.id == credential_id).values(last_used_at=now)
    )


async def use_assertion(
    session: AsyncSession, *, client_id: str, jti: str, tenant_id: UUID | None, expires_at: datetime, now: datetime
) -> bool:
    """Records the assertion's jti; False if it was seen before (a replay).

    Expired entries of the client go first, so the table holds only
    assertions that could still be presented."""
    await session.execute(
        delete(ClientAssertion).where(ClientAssertion.client_id == client_id, ClientAssertion.expires_at <= now)
    )
    inserted = await session.execute(
        insert(ClientAssertion)
        .values(client_id=client_id, jti=jti, tenant_id=tenant_id, expires_at=expires_at)
        .on_conflict_do_nothing()
        .returning(ClientAssertion.jti)
    )
    return inserted.scalar_one_or_none() is not None


async def credential_ids_of_tenant(session: AsyncSession, tenant_id: UUID) -> list[UUID]:
    rows = await session.execute(
        select(ServiceAccountCredential.id).where(ServiceAccountCredential.tenant_id == tenant_id)
    )
    return list(rows.scalars())
