from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from kit.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    database_url: str = Field(validation_alias=AliasChoices("AUTH_DATABASE_URL", "DATABASE_URL"))
    listen_addr: str = Field(default="127.0.0.1:50051", validation_alias="AUTH_LISTEN_ADDR")
    refresh_token_expire_days: int = Field(default=7, ge=1, le=365, validation_alias="REFRESH_TOKEN_EXPIRE_DAYS")
    bcrypt_rounds: int = Field(default=12, ge=4, le=16, validation_alias="BCRYPT_ROUNDS")
    # Hashing runs in this many threads, off the event loop; further logins queue.
    bcrypt_max_workers: int = Field(default=2, ge=1, le=64, validation_alias="BCRYPT_MAX_WORKERS")
    # Password checks waiting for a thread; beyond this, RESOURCE_EXHAUSTED at once with a retry delay.
    bcrypt_max_queue: int = Field(default=16, ge=0, le=10_000, validation_alias="BCRYPT_MAX_QUEUE")
    platform_admin_email: str | None = Field(default=None, validation_alias="PLATFORM_ADMIN_EMAIL")
    platform_admin_password: SecretStr | None = Field(default=None, validation_alias="PLATFORM_ADMIN_PASSWORD")
    # Invitation tokens expire after this long; a resend issues a new one.
    invitation_ttl_hours: int = Field(default=168, ge=1, le=24 * 90, validation_alias="INVITATION_TTL_HOURS")
    # Where people open the links in Tenantry's emails.
    public_base_url: str = Field(default="http://127.0.0.1:8080", validation_alias="PUBLIC_BASE_URL")
