"""The caller's tenant in one statement: binds the scope, then reads under row-level security.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLE = "tenantry_tenants"

# SECURITY INVOKER (the default): the query runs as the runtime role, so the
# tenant_isolation policy filters it exactly as it filters any other read. The
# scope is bound with is_local = true; called outside an explicit transaction,
# the statement is its own transaction, so the binding ends with it and never
# stays on the pooled connection.
FUNCTION = """
CREATE FUNCTION tenants.provisioned_tenant_in_scope(tenant uuid) RETURNS SETOF tenants.tenants
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant::text, true);
    RETURN QUERY SELECT * FROM tenants.tenants AS t WHERE t.id = tenant AND t.provisioned_at IS NOT NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION tenants.provisioned_tenant_in_scope(uuid) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION tenants.provisioned_tenant_in_scope(uuid) TO "{ROLE}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION tenants.provisioned_tenant_in_scope(uuid)")
