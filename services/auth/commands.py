"""Operator commands of the auth service, run beside it: `python -m services.auth COMMAND`."""

from __future__ import annotations

import asyncio
import getpass
import sys
from datetime import UTC, datetime, timedelta

from kit.db import Database
from kit.errors import DomainError
from kit.outbox import Outbox
from kit.settings import ServiceSettings
from kit.tokens import CLOCK_LEEWAY
from services.auth.models import DB_ROLE, outbox
from services.auth.service.operators import reset_platform_admin_password
from services.auth.service.passwords import PasswordHasher
from services.auth.settings import AuthSettings

RESET_USAGE = (
    "usage: python -m services.auth reset-operator-password [EMAIL]\n"
    "EMAIL defaults to PLATFORM_ADMIN_EMAIL. The new password is PLATFORM_ADMIN_PASSWORD when set,\n"
    "otherwise read from standard input (asked twice on a terminal); never from the command line."
)


def _new_password(settings: AuthSettings) -> str:
    if settings.platform_admin_password is not None:
        return settings.platform_admin_password.get_secret_value()
    if sys.stdin.isatty():
        password = getpass.getpass("New operator password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("reset-operator-password: the two passwords differ; nothing was changed")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def reset_operator_password(settings: ServiceSettings, args: list[str]) -> None:
    """Sets the operator's password and ends its sessions everywhere, with an audit event."""
    assert isinstance(settings, AuthSettings)
    if len(args) > 1 or args[:1] in (["-h"], ["--help"]):
        raise SystemExit(RESET_USAGE)
    email = args[0] if args else settings.platform_admin_email
    if not email:
        raise SystemExit("reset-operator-password: give the operator's EMAIL or set PLATFORM_ADMIN_EMAIL")
    password = _new_password(settings)
    # An access token issued just before the reset must not outlive its revocation.
    revoked_until = (
        datetime.now(UTC) + timedelta(minutes=settings.access_token_expire_minutes) + timedelta(seconds=CLOCK_LEEWAY)
    )

    async def run() -> tuple[str, int]:
        database = Database(settings.database_url, role=DB_ROLE, pool_size=1)
        hasher = PasswordHasher(rounds=settings.bcrypt_rounds, max_workers=1)
        try:
            user_id, revoked = await reset_platform_admin_password(
                database, hasher, Outbox(outbox), email=email, password=password, revoked_until=revoked_until
            )
            return str(user_id), revoked
        finally:
            hasher.close()
            await database.dispose()

    try:
        user_id, revoked = asyncio.run(run())
    except DomainError as error:
        raise SystemExit(f"reset-operator-password: {error}") from None
    print(f"The password of operator {email} ({user_id}) is reset; {revoked} session(s) ended.", flush=True)
