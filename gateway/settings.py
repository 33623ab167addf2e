from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.upstreams import parse_upstreams

DEFAULT_UPSTREAMS = (
    "tenantry.auth.v1=127.0.0.1:50051;tenantry.tenants.v1=127.0.0.1:50052;tenantry.audit.v1=127.0.0.1:50053"
)


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    listen_host: str = Field(default="127.0.0.1", validation_alias="GATEWAY_HOST")
    listen_port: int = Field(default=8080, ge=1, le=65535, validation_alias="GATEWAY_PORT")
    upstreams: str = Field(default=DEFAULT_UPSTREAMS, validation_alias="GATEWAY_UPSTREAMS")
    # One or more FileDescriptorSets, separated by ',' or ':' (Tenantry's and each
    # team's). Default: the set `make proto` writes beside the generated code.
    descriptor_set: str = Field(default="", validation_alias="GATEWAY_DESCRIPTOR_SET")
    # For RPCs whose contract names no (tenantry.common.v1.access) rule:
    # "conf.v1=public;acme.tickets.v1.TicketService=authenticated"; see gateway.access_policy.
    access_policy: str = Field(default="", validation_alias="GATEWAY_ACCESS_POLICY")
    # Where the edge gets token keys: an HTTP JWKS document, or when empty the
    # JWKS method's RPC (generated stubs) on its service's upstream.
    jwks_url: str = Field(default="", validation_alias="GATEWAY_JWKS_URL")
    cors_origins: str = Field(default="", validation_alias="CORS_ORIGINS")
    max_body_bytes: int = Field(default=1_048_576, ge=1, validation_alias="GATEWAY_MAX_BODY_BYTES")
    upstream_timeout_seconds: float = Field(default=15.0, gt=0, validation_alias="GATEWAY_UPSTREAM_TIMEOUT_SECONDS")
    rate_limit_per_minute: int = Field(default=30, ge=1, validation_alias="GATEWAY_RATE_LIMIT_PER_MINUTE")
    # Calls of each rate-limited method in flight at once; past it, 429 at once.
    max_in_flight: int = Field(default=32, ge=1, le=100_000, validation_alias="GATEWAY_MAX_IN_FLIGHT")
    rate_limited_methods: str = Field(
        default="tenantry.auth.v1.AuthService.Login,tenantry.auth.v1.AuthService.Refresh,"
        "tenantry.auth.v1.AuthService.AcceptInvitation,tenantry.auth.v1.ApiKeyService.ExchangeApiKey,"
        "tenantry.auth.v1.OAuthService.CreateToken",
        validation_alias="GATEWAY_RATE_LIMITED_METHODS",
    )
    # Proxies in front of the gateway (CIDRs, comma-separated) whose
    # X-Forwarded-For is believed; none by default.
    trusted_proxies: str = Field(default="", validation_alias="GATEWAY_TRUSTED_PROXIES")
    # Shared with the services: presented with the client address and user
    # agent, so that they believe those (and nobody else's).
    gateway_token: SecretStr = Field(default=SecretStr(""), validation_alias="GATEWAY_TOKEN")
    jwks_method: str = Field(default="/tenantry.auth.v1.AuthService/GetJwks", validation_alias="GATEWAY_JWKS_METHOD")
    # The RPC that exchanges API keys for access tokens at the edge.
    api_key_exchange_method: str = Field(
        default="/tenantry.auth.v1.ApiKeyService/ExchangeApiKey", validation_alias="GATEWAY_API_KEY_EXCHANGE_METHOD"
    )
    jwt_issuer: str = Field(default="tenantry", validation_alias="JWT_ISSUER")
    jwt_audience: str = Field(default="tenantry-api", validation_alias="JWT_AUDIENCE")
    # Response field names: "proto" (display_name, the default) or "json" (each field's json_name,
    # lowerCamelCase unless the contract sets one). Requests accept both either way.
    json_names: Literal["proto", "json"] = Field(default="proto", validation_alias="GATEWAY_JSON_NAMES")
    # Processes serving the port (kit.workers); each has its own limits: see README, Workers.
    workers: int = Field(default=1, ge=1, le=64, validation_alias="GATEWAY_WORKERS")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_tracebacks: bool = Field(default=False, validation_alias="LOG_TRACEBACKS")

    def upstream_config(self) -> dict[str, list[str]]:
        return parse_upstreams(self.upstreams)

    def origins(self) -> set[str]:
        return {origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip()}

    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(cidr.strip(), strict=False) for cidr in self.trusted_proxies.split(",") if cidr.strip()
        ]

    def in_flight_per_worker(self) -> int:
        """GATEWAY_MAX_IN_FLIGHT shared among the workers, so the upstream sees about as many (at least one each)."""
        return -(-self.max_in_flight // self.workers)

    def limited_methods(self) -> set[str]:
        return {name.strip() for name in self.rate_limited_methods.split(",") if name.strip()}
