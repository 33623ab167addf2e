"""A keyed hash chain per tenant over the audit events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from alembic import op

from kit.migrations import CURRENT_TENANT, tenant_policy_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLE = "tenantry_audit"


def upgrade() -> None:
    op.execute("ALTER TABLE audit.events ADD COLUMN sequence bigint, ADD COLUMN chain_hash bytea")
    op.execute("CREATE INDEX events_chain ON audit.events ((coalesce(tenant_id::text, 'platform')), sequence)")
    # The newest link of each tenant's chain. Its row lock serialises appends
    # per tenant, so the chain never forks.
    op.execute(
        """
        CREATE TABLE audit.chain_heads (
            scope text PRIMARY KEY,
            sequence bigint NOT NULL,
            chain_hash bytea NOT NULL
        )
        """
    )
    for statement in tenant_policy_sql("audit.chain_heads", f"scope = {CURRENT_TENANT}"):
        op.execute(statement)
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON audit.chain_heads TO "{ROLE}"')


def downgrade() -> None:
    op.execute("DROP TABLE audit.chain_heads")
    op.execute("DROP INDEX audit.events_chain")
    op.execute("ALTER TABLE audit.events DROP COLUMN chain_hash, DROP COLUMN sequence")
