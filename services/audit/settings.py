from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from kit.settings import ServiceSettings, database_url_field, workers_field


class AuditSettings(ServiceSettings):
    database_url: str = database_url_field("audit")
    listen_addr: str = Field(default="127.0.0.1:50053", validation_alias="AUDIT_LISTEN_ADDR")
    workers: int = workers_field("audit")
    # Monthly partitions kept ready ahead of time, created at start and daily.
    partition_months_ahead: int = Field(default=3, ge=1, le=24, validation_alias="AUDIT_PARTITION_MONTHS_AHEAD")
    # Keys the hash chain: whoever changes events in the database cannot
    # recompute valid hashes without it. Keep it out of the database's reach.
    audit_chain_key: SecretStr = Field(validation_alias="AUDIT_CHAIN_KEY")
    # The service's own files, out of the database's reach: the signed
    # checkpoints of every chain (checkpoints/<scope>.jsonl, append-only) and,
    # unless AUDIT_CHECKPOINT_KEY_FILE says otherwise, the key signing them.
    audit_data_dir: Path = Field(validation_alias="AUDIT_DATA_DIR")
    # An Ed25519 private key (PKCS#8 PEM), made with mode 0600 on first start.
    checkpoint_key_file: Path | None = Field(default=None, validation_alias="AUDIT_CHECKPOINT_KEY_FILE")
    # How often chains whose head moved get a signed checkpoint. Events
    # appended since the last checkpoint and then removed with the head
    # rewound go unnoticed until then.
    checkpoint_interval_seconds: float = Field(
        default=60, ge=0.1, le=86400, validation_alias="AUDIT_CHECKPOINT_INTERVAL_SECONDS"
    )

    # Where months past retention are archived (compressed JSONL and a signed
    # manifest per month); unset, nothing is ever archived or dropped.
    archive_dir: Path | None = Field(default=None, validation_alias="AUDIT_ARCHIVE_DIR")
    # Months a tenant's events stay in the live trail unless it sets its own; 0 keeps them forever.
    retention_months: int = Field(default=0, ge=0, le=1200, validation_alias="AUDIT_RETENTION_MONTHS")
    # How often a replica tries the retention run (one replica at a time runs it).
    retention_interval_seconds: float = Field(
        default=86400, ge=1, le=30 * 86400, validation_alias="AUDIT_RETENTION_INTERVAL_SECONDS"
    )

    @field_validator("audit_chain_key")
    @classmethod
    def _strong_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("audit_data_dir", mode="before")
    @classmethod
    def _names_a_directory(cls, value: object) -> object:
        # An empty value would quietly mean the working directory.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a directory")
        return value

    @field_validator("checkpoint_key_file", "archive_dir", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def checkpoint_key_path(self) -> Path:
        return self.checkpoint_key_file or self.audit_data_dir / "checkpoint-signing-key.pem"
