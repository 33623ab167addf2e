"""Tenant registry and outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from alembic import op

from kit.migrations import CURRENT_TENANT, drop_role_sql, ensure_role_sql, tenant_policy_sql
from kit.outbox import create_outbox_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE = "tenantry_tenants"


def upgrade() -> None:
    op.execute(ensure_role_sql(ROLE))
    op.execute(
        """
        CREATE TABLE tenants.tenants (
            id uuid PRIMARY KEY,
            name varchar(200) NOT NULL,
            slug varchar(63) NOT NULL UNIQUE,
            subscription_tier varchar(20) NOT NULL CHECK (subscription_tier IN ('free', 'basic', 'premium')),
            settings jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
            is_active boolean NOT NULL,
            owner_email varchar(254) NOT NULL,
            provisioned_at timestamptz,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX tenants_created ON tenants.tenants (created_at, id)")
    for statement in create_outbox_sql("tenants"):
        op.execute(statement)
    # A tenant sees itself; the platform operator sees every tenant.
    for statement in tenant_policy_sql(
        "tenants.tenants", f"id::text = {CURRENT_TENANT} OR {CURRENT_TENANT} = 'platform'"
    ):
        op.execute(statement)
    op.execute(f'GRANT USAGE ON SCHEMA tenants TO "{ROLE}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON tenants.tenants TO "{ROLE}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON tenants.outbox TO "{ROLE}"')


def downgrade() -> None:
    op.execute("DROP TABLE tenants.outbox")
    op.execute("DROP TABLE tenants.tenants")
    op.execute(f'REVOKE ALL ON SCHEMA tenants FROM "{ROLE}"')
    op.execute(drop_role_sql(ROLE))
