from __future__ import annotations

from pydantic import AliasChoices, Field

from kit.settings import ServiceSettings


class TenantsSettings(ServiceSettings):
    database_url: str = Field(validation_alias=AliasChoices("TENANTS_DATABASE_URL", "DATABASE_URL"))
    listen_addr: str = Field(default="127.0.0.1:50052", validation_alias="TENANTS_LISTEN_ADDR")
