from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from kit.settings import ServiceSettings, database_url_field, workers_field
from services.auth.service.platform_accounts import parse_platform_accounts


class AuthSettings(ServiceSettings):
    database_url: str = database_url_field("auth")
    listen_addr: str = Field(default="127.0.0.1:50051", validation_alias="AUTH_LISTEN_ADDR")
    workers: int = workers_field("auth")
    refresh_token_expire_days: int = Field(default=7, ge=1, le=365, validation_alias="REFRESH_TOKEN_EXPIRE_DAYS")
    bcrypt_rounds: int = Field(default=12, ge=4, le=16, validation_alias="BCRYPT_ROUNDS")
    # Hashing runs in this many threads, off the event loop; further logins queue.
    bcrypt_max_workers: int = Field(default=2, ge=1, le=64, validation_alias="BCRYPT_MAX_WORKERS")
    # Password checks waiting for a thread; beyond this, RESOURCE_EXHAUSTED at once with a retry delay.
    # With the default threads, as many as the gateway lets through (GATEWAY_MAX_IN_FLIGHT, 32): the
    # gateway then refuses a burst's excess itself, at once, and auth none after a round trip.
    bcrypt_max_queue: int = Field(default=30, ge=0, le=10_000, validation_alias="BCRYPT_MAX_QUEUE")
    platform_admin_email: str | None = Field(default=None, validation_alias="PLATFORM_ADMIN_EMAIL")
    platform_admin_password: SecretStr | None = Field(default=None, validation_alias="PLATFORM_ADMIN_PASSWORD")
    # Invitation tokens expire after this long; a resend issues a new one.
    invitation_ttl_hours: int = Field(default=168, ge=1, le=24 * 90, validation_alias="INVITATION_TTL_HOURS")
    # Where people open the links in Tenantry's emails.
    public_base_url: str = Field(default="http://127.0.0.1:8080", validation_alias="PUBLIC_BASE_URL")
    # Keys the HMAC-SHA-256 that API keys are stored as (16+ characters). Unset: no API key can be
    # made or used. Changing it invalidates every key.
    api_key_hash_key: SecretStr | None = Field(default=None, validation_alias="API_KEY_HASH_KEY")
    # Lifetime of the access tokens API keys are exchanged for (at most 300 s, never past the key's expiry).
    api_key_token_ttl_seconds: int = Field(default=300, ge=10, le=300, validation_alias="API_KEY_TOKEN_TTL_SECONDS")

    # Service accounts' access tokens (client-credentials grant) live this long.
    service_token_expire_minutes: int = Field(default=10, ge=1, le=60, validation_alias="SERVICE_TOKEN_EXPIRE_MINUTES")
    # The platform service accounts of Tenantry's own services, `name=secret,...` (tenants, audit);
    # each service holds its own as SERVICE_CLIENT_ID / SERVICE_CLIENT_SECRET.
    platform_service_accounts: SecretStr = Field(default=SecretStr(""), validation_alias="PLATFORM_SERVICE_ACCOUNTS")
    # What a private_key_jwt assertion's aud must be; unset: PUBLIC_BASE_URL + /api/v1/oauth/token.
    oauth_token_url: str | None = Field(default=None, validation_alias="OAUTH_TOKEN_URL")

    # Email delivery over SMTP. Without SMTP_HOST nothing is sent: emails wait in the outbox.
    smtp_host: str | None = Field(default=None, validation_alias="SMTP_HOST")
    # Unset: 25, 587 or 465 by SMTP_TLS.
    smtp_port: int | None = Field(default=None, ge=1, le=65535, validation_alias="SMTP_PORT")
    smtp_username: str | None = Field(default=None, validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, validation_alias="SMTP_PASSWORD")
    smtp_from: str = Field(default="Tenantry <no-reply@tenantry.local>", validation_alias="SMTP_FROM")
    smtp_tls: Literal["none", "starttls", "tls"] = Field(default="starttls", validation_alias="SMTP_TLS")
    # A PEM file of CAs to trust for the server's certificate (a private relay); unset: the system's.
    smtp_ca_file: str | None = Field(default=None, validation_alias="SMTP_CA_FILE")
    smtp_timeout_seconds: float = Field(default=15, gt=0, le=300, validation_alias="SMTP_TIMEOUT_SECONDS")
    # A message that fails for a passing reason is tried again after base * 2^(attempts - 1)
    # seconds, at most max, and given up (status failed) after so many attempts.
    email_retry_base_seconds: float = Field(default=30, gt=0, validation_alias="EMAIL_RETRY_BASE_SECONDS")
    email_retry_max_seconds: float = Field(default=3600, gt=0, validation_alias="EMAIL_RETRY_MAX_SECONDS")
    email_max_attempts: int = Field(default=20, ge=1, le=1000, validation_alias="EMAIL_MAX_ATTEMPTS")
    # New emails wake the sender at once; other replicas' emails are found by polling this often.
    email_poll_seconds: float = Field(default=5, gt=0, le=600, validation_alias="EMAIL_POLL_SECONDS")

    @field_validator("api_key_hash_key", mode="before")
    @classmethod
    def _empty_is_unset_or_long_enough(cls, value: object) -> object:
        if value == "":
            return None
        if isinstance(value, str) and len(value) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @property
    def token_endpoint(self) -> str:
        return self.oauth_token_url or self.public_base_url.rstrip("/") + "/api/v1/oauth/token"

    @field_validator("platform_service_accounts")
    @classmethod
    def _platform_accounts(cls, value: SecretStr) -> SecretStr:
        parse_platform_accounts(value.get_secret_value())
        return value

    @field_validator("smtp_host", "smtp_port", "smtp_username", "smtp_password", "smtp_ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose and env files write "SMTP_USERNAME=" for "none": an empty login would be tried.
        return None if value == "" else value
