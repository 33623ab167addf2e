"""A scope's chain is read by (tenant_id, sequence), a plain index that row-level security can use.

The chain's index of 0002 is on coalesce(tenant_id::text, 'platform'): a cast
to text is not leakproof, so under the read policies (which every runtime
query is) PostgreSQL may not use a condition on that expression to probe the
index, and read each chain page by sequence alone, every tenant's events in
that range, then sorted. A condition on tenant_id itself (uuid equality, or
IS NULL for the platform's events) is leakproof: the probe stays in the one
chain. Ingest also no longer computes the text of each event's tenant for an index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX events_scope_sequence ON audit.events (tenant_id, sequence)")
    op.execute("DROP INDEX audit.events_chain")


def downgrade() -> None:
    op.execute("CREATE INDEX events_chain ON audit.events ((coalesce(tenant_id::text, 'platform')), sequence)")
    op.execute("DROP INDEX audit.events_scope_sequence")
