"""Platform-wide system settings: public ones readable by anyone, all of them by operators.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

from kit.migrations import CURRENT_TENANT

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLE = "tenantry_tenants"
OPERATORS = f"{CURRENT_TENANT} = 'platform'"


def upgrade() -> None:
    op.execute(
        r"""
        CREATE TABLE tenants.system_settings (
            key varchar(100) PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
            value jsonb NOT NULL,
            description varchar(1000) NOT NULL DEFAULT '',
            is_public boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            updated_by uuid
        )
        """
    )
    # Not a tenant's data, but guarded the same way: anyone's scope reads the
    # public rows; only the operators' platform scope reads the rest or writes.
    op.execute("ALTER TABLE tenants.system_settings ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenants.system_settings FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY public_read ON tenants.system_settings FOR SELECT USING (is_public)")
    op.execute(f"CREATE POLICY operators ON tenants.system_settings USING ({OPERATORS}) WITH CHECK ({OPERATORS})")
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON tenants.system_settings TO "{ROLE}"')


def downgrade() -> None:
    op.execute("DROP TABLE tenants.system_settings")
