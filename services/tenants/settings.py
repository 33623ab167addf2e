from __future__ import annotations

from pydantic import Field

from kit.settings import ServiceSettings, database_url_field, workers_field


class TenantsSettings(ServiceSettings):
    database_url: str = database_url_field("tenants")
    listen_addr: str = Field(default="127.0.0.1:50052", validation_alias="TENANTS_LISTEN_ADDR")
    workers: int = workers_field("tenants")
