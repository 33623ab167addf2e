"""The platform operator: created on first start from the settings, its password reset by an operator command."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from kit.db import PLATFORM_SCOPE, Database, bind_scope
from kit.errors import NotFound
from kit.outbox import Outbox
from kit.validation import normalize_email, validate_password
from services.auth.repository import sessions as session_rows
from services.auth.repository import users
from services.auth.service.passwords import PasswordHasher

log = logging.getLogger(__name__)

RESET_COMMAND = "python -m services.auth reset-operator-password"


async def ensure_platform_admin(
    database: Database, hasher: PasswordHasher, outbox: Outbox, *, email: str, password: str
) -> None:
    """Creates the operator if no user has that email; never changes an existing user.

    An existing operator whose password is not PLATFORM_ADMIN_PASSWORD keeps it,
    with a warning: the setting only seeds a new database.
    """
    email = normalize_email("PLATFORM_ADMIN_EMAIL", email)
    validate_password("PLATFORM_ADMIN_PASSWORD", password)
    async with database.unit_of_work(scope="") as session:
        existing = await users.find_user_by_email(session, email)
        if existing is not None:
            if not existing.is_platform_admin:
                log.warning(
                    "PLATFORM_ADMIN_EMAIL belongs to a user who is not a platform operator; nothing was changed",
                    extra={"email": email},
                )
            elif not await hasher.verify(password, existing.password_hash):
                log.warning(
                    "PLATFORM_ADMIN_PASSWORD differs from the operator's password in the database and is ignored:"
                    f" it only applies when the operator is created. To make it the password, run: {RESET_COMMAND}",
                    extra={"email": email},
                )
            return
        user_id = await users.insert_user_if_absent(
            session,
            email=email,
            full_name="Platform operator",
            password_hash=await hasher.hash(password),
            now=datetime.now(UTC),
            platform_admin=True,
        )
        if user_id is not None:
            await outbox.record(
                session,
                action="user.created",
                resource_type="user",
                resource_id=user_id,
                user_id=user_id,
                details={"email": email, "platform_admin": True},
            )
            log.info("platform operator created", extra={"user_id": str(user_id)})


async def reset_platform_admin_password(
    database: Database,
    hasher: PasswordHasher,
    outbox: Outbox,
    *,
    email: str,
    password: str,
    revoked_until: datetime,
) -> tuple[UUID, int]:
    """Sets the operator's password and revokes every session it has, in one transaction.

    The revocations reach running auth replicas by NOTIFY on commit, and the
    audit event leaves through the outbox. Returns the operator's id and the
    number of sessions revoked.
    """
    email = normalize_email("email", email)
    validate_password("password", password)
    password_hash = await hasher.hash(password)
    async with database.unit_of_work(scope=PLATFORM_SCOPE) as session:
        user = await users.find_user_by_email(session, email)
        if user is None or not user.is_platform_admin:
            raise NotFound(f"email: no platform operator has the email {email}")
        # The subject binding lets row-level security show every session of the user, in any tenant.
        await bind_scope(session, tenant=PLATFORM_SCOPE, subject=user.id)
        await users.set_password_hash(session, user.id, password_hash, datetime.now(UTC))
        revoked = len(
            await session_rows.revoke_sessions(
                session, reason="password_reset", revoked_until=revoked_until, user_id=user.id
            )
        )
        await outbox.record(
            session,
            action="user.password_reset",
            resource_type="user",
            resource_id=user.id,
            user_id=user.id,
            details={"email": email, "sessions_revoked": revoked, "by": "operator command"},
        )
    log.info("operator password reset", extra={"user_id": str(user.id), "sessions_revoked": revoked})
    return user.id, revoked
