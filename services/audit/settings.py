from __future__ import annotations

from pydantic import AliasChoices, Field

from kit.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    database_url: str = Field(validation_alias=AliasChoices("AUDIT_DATABASE_URL", "DATABASE_URL"))
    listen_addr: str = Field(default="127.0.0.1:50053", validation_alias="AUDIT_LISTEN_ADDR")
    # Monthly partitions kept ready ahead of time, created at start and daily.
    partition_months_ahead: int = Field(default=3, ge=1, le=24, validation_alias="AUDIT_PARTITION_MONTHS_AHEAD")
