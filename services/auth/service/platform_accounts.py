"""The platform service accounts of Tenantry's own services, provisioned from settings at start.

Each named service gets an account whose id derives from its name (so its
client id is known without asking: kit.service_identity.platform_client_id),
the permissions its calls need, and exactly the configured secret: a changed
secret replaces the old one and revokes the tokens issued with it, and one
service's secret changing touches no other account. Auth itself needs no
secret: it mints its own tokens.
"""

from __future__ import annotations

from sqlalchemy import text

from kit.db import PLATFORM_SCOPE, Database
from kit.service_identity import platform_account_id
from services.auth.repository import service_accounts as account_rows
from services.auth.service.service_accounts import CLIENT_SECRET, ServiceAccountService, hash_client_secret

# What each of Tenantry's services calls the others for.
PLATFORM_SERVICES: dict[str, tuple[str, ...]] = {
    "tenants": ("audit.ingest", "auth.provision_owner", "auth.revocations.watch"),
    "audit": ("auth.revocations.watch",),
    # The example backends `make run EXAMPLES=...` starts (examples/), run by the same operator.
    "examples": ("audit.ingest", "auth.revocations.watch"),
}
# Auth's own calls: its outbox relay.
AUTH_PERMISSIONS = ("audit.ingest",)
MIN_SECRET_LENGTH = 32


def parse_platform_accounts(value: str) -> dict[str, str]:
    """`name=secret,name=secret` (PLATFORM_SERVICE_ACCOUNTS); ValueError naming what is wrong."""
    configured: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, equals, secret = entry.partition("=")
        name = name.strip()
        if not equals or name not in PLATFORM_SERVICES:
            raise ValueError(f"entries are name=secret with a name of: {', '.join(PLATFORM_SERVICES)}")
        if len(secret.strip()) < MIN_SECRET_LENGTH:
            raise ValueError(f"{name}'s secret must be at least {MIN_SECRET_LENGTH} characters")
        configured[name] = secret.strip()
    return configured


async def provision_platform_accounts(
    database: Database, accounts: ServiceAccountService, configured: dict[str, str]
) -> None:
    if not configured:
        return
    async with database.unit_of_work(scope=PLATFORM_SCOPE) as session:
        # Replicas starting together provision one after the other.
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('tenantry.platform_service_accounts'))"))
        for name, secret in configured.items():
            permissions = PLATFORM_SERVICES[name]
            account = await account_rows.find_account(session, None, platform_account_id(name), lock=True)
            if account is None:
                account = await accounts.insert(
                    session,
                    tenant_id=None,
                    name=f"tenantry-{name}",
                    description=f"Tenantry's {name} service (provisioned from PLATFORM_SERVICE_ACCOUNTS)",
                    permissions=permissions,
                    created_by=None,
                    account_id=platform_account_id(name),
                )
            elif sorted(account.permissions) != sorted(permissions):
                await account_rows.set_permissions(session, account.id, list(permissions))
            if await account_rows.find_secret(session, account.id, hash_client_secret(secret)) is None:
                replaced = await account_rows.delete_credentials(session, account.id, type_=CLIENT_SECRET)
                await accounts.revoke_credentials(session, account, replaced)
                await accounts.add_secret_to(session, account, secret)
