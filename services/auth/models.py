"""The auth schema: global identities, tenant-scoped memberships and sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, ForeignKey, LargeBinary, MetaData, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kit.outbox import outbox_table

SCHEMA = "auth"
DB_ROLE = "tenantry_auth"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


outbox = outbox_table(Base.metadata)


class User(Base):
    """One identity across tenants. Not tenant-scoped: a user belongs to tenants through memberships."""

    __tablename__ = "users"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    # Stored lower-cased, so uniqueness is case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(100))
    is_platform_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set once the person proved control of the email (an emailed link).
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The tenant a login without tenant_slug goes to, when the user chose one.
    default_tenant_id: Mapped[UUID | None] = mapped_column(ForeignKey("tenant_directory.tenant_id"))
    # The language of the user's emails ("en", "af"); None: the default.
    preferred_language: Mapped[str | None] = mapped_column(String(10))


class TenantDirectoryEntry(Base):
    """What auth must know of each tenant to log users in to it, kept by the
    tenants service through internal RPCs (auth never reads its tables)."""

    __tablename__ = "tenant_directory"

    tenant_id: Mapped[UUID] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    is_active: Mapped[bool]
    # The tenant's settings.registration: may people register themselves, and with which role.
    registration_enabled: Mapped[bool] = mapped_column(default=False)
    registration_role: Mapped[str | None] = mapped_column(String(40))
    # settings.email: the display name its emails come from, and the product they name.
    email_sender_name: Mapped[str | None] = mapped_column(String(100))
    email_product_name: Mapped[str | None] = mapped_column(String(100))


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenant_directory.tenant_id"))
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id"))
    # A built-in role or one of the tenant's roles (auth.roles).
    role: Mapped[str] = mapped_column(String(40))
    # active, suspended or removed; an invitation not yet accepted is no membership.
    status: Mapped[str] = mapped_column(String(20))
    # tenant_creation, invitation or migration.
    joined_via: Mapped[str] = mapped_column(String(20))
    invited_by: Mapped[UUID | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TenantRole(Base):
    """A role a tenant defined; the built-in roles live in code."""

    __tablename__ = "roles"

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenant_directory.tenant_id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    description: Mapped[str] = mapped_column(String(500))
    permissions: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Invitation(Base):
    """An emailed, single-use, expiring offer of a membership; the token is stored only as a hash."""

    __tablename__ = "invitations"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenant_directory.tenant_id"))
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(40))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    # None when the platform operator invited a tenant's first owner.
    invited_by: Mapped[UUID | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by: Mapped[UUID | None]
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EmailMessage(Base):
    """An email waiting to be sent, written in the transaction of the change that causes it."""

    __tablename__ = "email_outbox"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[UUID | None]
    recipient: Mapped[str] = mapped_column(String(254))
    template: Mapped[str] = mapped_column(String(60))
    language: Mapped[str] = mapped_column(String(10))
    # What the template needs, links included; cleared once sent.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the sender tries a queued message next (a claim moves it past the attempt); None once done.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Session(Base):
    """A login: the family of refresh tokens issued from it, revoked as one."""

    __tablename__ = "sessions"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id"))
    # None for the platform operator's sessions.
    tenant_id: Mapped[UUID | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoke_reason: Mapped[str | None] = mapped_column(String(40))
    # The client that logged in, as the gateway saw it.
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))


class RefreshToken(Base):
    """Stored only as a SHA-256 hash; single-use."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    session_id: Mapped[UUID] = mapped_column(ForeignKey("sessions.id"), index=True)
    user_id: Mapped[UUID]
    tenant_id: Mapped[UUID | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SessionRevocation(Base):
    """Revoked session ids while their access tokens may still be live; holds
    no tenant data, and every service's revocation feed starts from it."""

    __tablename__ = "session_revocations"

    session_id: Mapped[UUID] = mapped_column(primary_key=True)
    revoked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AccountToken(Base):
    """An emailed, single-use, expiring token of a person's own (verification, reset); stored only as a hash."""

    __tablename__ = "account_tokens"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id"))
    # email_verification or password_reset.
    purpose: Mapped[str] = mapped_column(String(30))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Throttle(Base):
    """A counter of attempts under one key (a hash of an email or a client address) in a window."""

    __tablename__ = "throttles"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    hits: Mapped[int]
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A tenant's machine credential, `tnt_<prefix>_<secret>`: only an HMAC-SHA-256 of it is stored."""

    __tablename__ = "api_keys"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenant_directory.tenant_id"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    permissions: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_by: Mapped[UUID]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[UUID | None]
