from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator

from kit.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    database_url: str = Field(validation_alias=AliasChoices("AUDIT_DATABASE_URL", "DATABASE_URL"))
    listen_addr: str = Field(default="127.0.0.1:50053", validation_alias="AUDIT_LISTEN_ADDR")
    # Monthly partitions kept ready ahead of time, created at start and daily.
    partition_months_ahead: int = Field(default=3, ge=1, le=24, validation_alias="AUDIT_PARTITION_MONTHS_AHEAD")
    # Keys the hash chain: whoever changes events in the database cannot
    # recompute valid hashes without it. Keep it out of the database's reach.
    audit_chain_key: SecretStr = Field(validation_alias="AUDIT_CHAIN_KEY")

    @field_validator("audit_chain_key")
    @classmethod
    def _strong_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value
