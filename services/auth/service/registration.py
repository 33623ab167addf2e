"""Self-registration in tenants whose settings allow it.

The answer is the same for a new and a registered email, in about the same
time: both hash the password (a registered email's hash is thrown away) and
queue one email, a verification link or a notice to the account's owner.
Self-registered accounts are unverified, so they capture nothing: an
invitation to their email asks its acceptor for a new password, and a reset
proves the email and ends every session.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kit.db import Database, bind_scope
from kit.error_details import Reason
from kit.errors import InvalidArgument, PermissionDenied
from kit.outbox import Outbox
from kit.permissions import grants
from kit.validation import normalize_email, validate_password, validate_text
from services.auth.mail.rendering import LANGUAGES
from services.auth.repository import directory, memberships, users
from services.auth.service.account_emails import VERIFICATION, AccountEmails
from services.auth.service.passwords import PasswordHasher
from services.auth.service.roles import CATALOGUE, permissions_of, role_name
from services.auth.service.throttling import CLIENT_REQUESTS, EMAIL_REQUESTS, client_address, limit_request

REGISTRATION_CLOSED = "tenant_slug: this tenant does not take registrations"
REGISTRATION_ATTEMPT = "registration_attempt"
# Self-registered people may read the tenant; everything else of Tenantry's must be granted by someone.
SELF_REGISTRATION_PERMISSIONS = {"tenant.read"}


class Registration:
    def __init__(self, *, hasher: PasswordHasher, outbox: Outbox, emails: AccountEmails) -> None:
        self._hasher = hasher
        self._outbox = outbox
        self._emails = emails

    async def register(
        self,
        database: Database,
        *,
        tenant_slug: str,
        email: str,
        full_name: str,
        password: str,
        preferred_language: str,
    ) -> None:
        email = normalize_email("email", email)
        full_name = validate_text("full_name", full_name, maximum=200)
        validate_password("password", password)
        language = preferred_language.strip() or "en"
        if language not in LANGUAGES:
            raise InvalidArgument("preferred_language", f"must be one of: {', '.join(LANGUAGES)}")
        slug = tenant_slug.strip()
        if not slug:
            raise InvalidArgument("tenant_slug", "is required")
        with self._hasher.slot() as hashing:
            async with database.unit_of_work(scope="") as session:
                tenant = await directory.find_tenant_by_slug(session, slug)
                if (
                    tenant is None
                    or not tenant.is_active
                    or not tenant.registration_enabled
                    or not tenant.registration_role
                ):
                    raise PermissionDenied(REGISTRATION_CLOSED, reason=Reason.REGISTRATION_CLOSED)
            # Hashed either way, so that a registered email answers in the same time.
            password_hash = await hashing.hash(password)
        async with database.unit_of_work(scope=str(tenant.tenant_id)) as session:
            await limit_request(session, EMAIL_REQUESTS, email)
            await limit_request(session, CLIENT_REQUESTS, client_address())
            now = datetime.now(UTC)
            user_id = await users.insert_user_if_absent(
                session,
                email=email,
                full_name=full_name,
                password_hash=password_hash,
                now=now,
                preferred_language=language,
            )
            if user_id is None:
                existing = await users.find_user_by_email(session, email)
                assert existing is not None  # users are never deleted
                await self._emails.send(
                    session,
                    existing,
                    REGISTRATION_ATTEMPT,
                    tenant_id=tenant.tenant_id,
                    tenant_slug=slug,
                    link=self._emails.link("/forgot-password"),
                )
                await self._outbox.record(
                    session,
                    action="auth.registration.attempted",
                    resource_type="user",
                    resource_id=existing.id,
                    tenant_id=tenant.tenant_id,
                    user_id=existing.id,
                    details={"category": "auth", "outcome": "failure", "reason": "email_registered"},
                )
                return
            await bind_scope(session, tenant=tenant.tenant_id, subject=user_id)
            await memberships.insert_membership_if_absent(
                session,
                tenant_id=tenant.tenant_id,
                user_id=user_id,
                role=tenant.registration_role,
                joined_via="registration",
                now=now,
            )
            user = await users.find_user(session, user_id)
            assert user is not None
            await self._emails.send_token(session, user, VERIFICATION, tenant_id=tenant.tenant_id)
            await self._outbox.record(
                session,
                action="auth.registration.succeeded",
                resource_type="user",
                resource_id=user_id,
                tenant_id=tenant.tenant_id,
                user_id=user_id,
                details={
                    "category": "auth",
                    "outcome": "success",
                    "reason": "registered",
                    "role": tenant.registration_role,
                },
            )


async def validate_registration_role(session, tenant_id, role: str) -> str:  # type: ignore[no-untyped-def]
    """A role that self-registered people may get: the tenant's, granting no
    Tenantry permission beyond reading the tenant (never an admin by signing up)."""
    role = role_name("default_role", role)
    permissions = await permissions_of(session, tenant_id, role)
    powerful = [p for p in CATALOGUE if p not in SELF_REGISTRATION_PERMISSIONS and grants(permissions, p)]
    if powerful:
        raise InvalidArgument(
            "default_role", f"'{role}' grants {', '.join(powerful[:3])}: too much for self-registration"
        )
    return role
