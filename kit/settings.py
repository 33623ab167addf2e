"""Settings shared by every service, read from the environment only."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def asyncpg_url(url: str) -> str:
    """Accepts plain postgresql:// URLs and points them at the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("must be a postgresql:// URL")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(validation_alias="DATABASE_URL")
    db_pool_size: int = Field(default=10, ge=1, validation_alias="DB_POOL_SIZE")
    # Deprecated: the one shared token internal RPCs accepted before service accounts. Unset
    # (the default), only platform service accounts' tokens pass internal RPCs.
    internal_api_token: SecretStr = Field(default=SecretStr(""), validation_alias="INTERNAL_API_TOKEN")
    # This service's own platform service account (kit.service_identity), for its calls to the others.
    service_client_id: str = Field(default="", validation_alias="SERVICE_CLIENT_ID")
    service_client_secret: SecretStr = Field(default=SecretStr(""), validation_alias="SERVICE_CLIENT_SECRET")
    jwt_issuer: str = Field(default="tenantry", validation_alias="JWT_ISSUER")
    jwt_audience: str = Field(default="tenantry-api", validation_alias="JWT_AUDIENCE")
    access_token_expire_minutes: int = Field(default=15, ge=1, le=1440, validation_alias="ACCESS_TOKEN_EXPIRE_MINUTES")
    auth_service_addr: str = Field(default="127.0.0.1:50051", validation_alias="AUTH_SERVICE_ADDR")
    audit_service_addr: str = Field(default="127.0.0.1:50053", validation_alias="AUDIT_SERVICE_ADDR")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_tracebacks: bool = Field(default=False, validation_alias="LOG_TRACEBACKS")
    # How long a service keeps trusting its revoked-session list after the
    # stream from auth broke; then authenticated RPCs answer UNAVAILABLE.
    revocation_max_staleness_seconds: float = Field(
        default=5.0, gt=0, le=60, validation_alias="REVOCATION_MAX_STALENESS_SECONDS"
    )
    # Shared with the gateway, which presents it with the client address and
    # user agent it forwards; without it those headers are never believed.
    gateway_token: SecretStr = Field(default=SecretStr(""), validation_alias="GATEWAY_TOKEN")
    # Processes serving the port (kit.workers); each service names its own: AUTH_WORKERS, ...
    workers: int = Field(default=1, ge=1, le=64, validation_alias="SERVICE_WORKERS")

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, value: str) -> str:
        return asyncpg_url(value)

    @field_validator("internal_api_token", "gateway_token")
    @classmethod
    def _empty_or_long_enough(cls, value: SecretStr) -> SecretStr:
        if 0 < len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value


def database_url_field(service: str) -> Any:
    """A service's own DATABASE_URL override, falling back to the shared one."""
    return Field(validation_alias=AliasChoices(f"{service.upper()}_DATABASE_URL", "DATABASE_URL"))


def workers_field(service: str) -> Any:
    """A service's own worker count (AUTH_WORKERS, ...), falling back to the shared SERVICE_WORKERS."""
    return Field(default=1, ge=1, le=64, validation_alias=AliasChoices(f"{service.upper()}_WORKERS", "SERVICE_WORKERS"))
