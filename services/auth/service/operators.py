"""The platform operator, created on first start from the settings."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kit.db import Database
from kit.outbox import Outbox
from kit.validation import normalize_email, validate_password
from services.auth.repository import users
from services.auth.service.passwords import PasswordHasher

log = logging.getLogger(__name__)


async def ensure_platform_admin(
    database: Database, hasher: PasswordHasher, outbox: Outbox, *, email: str, password: str
) -> None:
    """Creates the operator if no user has that email; never changes an existing user."""
    email = normalize_email("PLATFORM_ADMIN_EMAIL", email)
    validate_password("PLATFORM_ADMIN_PASSWORD", password)
    async with database.unit_of_work(scope="") as session:
        if await users.find_user_by_email(session, email) is not None:
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
