"""API keys: a tenant's long-lived machine credentials, stored as keyed hashes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op

from kit.migrations import CURRENT_TENANT, tenant_policy_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLE = "tenantry_auth"
# The prefix of a key being exchanged, bound by the exchange before it looks
# the key up: like the subject during a refresh, the credential's own clear
# part lets its one row through, and no tenant's list.
CURRENT_API_KEY_PREFIX = "current_setting('app.api_key_prefix', true)"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE auth.api_keys (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES auth.tenant_directory (tenant_id),
            name varchar(100) NOT NULL,
            prefix varchar(16) NOT NULL UNIQUE,
            secret_hash bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
            permissions text[] NOT NULL,
            created_by uuid NOT NULL,
            created_at timestamptz NOT NULL,
            expires_at timestamptz,
            last_used_at timestamptz,
            revoked_at timestamptz,
            revoked_by uuid
        )
        """
    )
    op.execute("CREATE INDEX api_keys_tenant ON auth.api_keys (tenant_id, created_at DESC, id DESC)")
    for statement in tenant_policy_sql(
        "auth.api_keys", f"tenant_id::text = {CURRENT_TENANT} OR prefix = {CURRENT_API_KEY_PREFIX}"
    ):
        op.execute(statement)
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON auth.api_keys TO "{ROLE}"')


def downgrade() -> None:
    op.execute("DROP TABLE auth.api_keys")
