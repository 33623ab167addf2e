"""The checkpoint writer reads every chain head.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The service signs checkpoints of every scope's head in one pass. Reading
    # them all takes this explicit transaction setting, so a request bound to
    # one tenant still sees only that tenant's head.
    op.execute(
        "CREATE POLICY checkpoint_writer_reads_all ON audit.chain_heads FOR SELECT "
        "USING (current_setting('app.all_chain_heads', true) = 'on')"
    )


def downgrade() -> None:
    op.execute("DROP POLICY checkpoint_writer_reads_all ON audit.chain_heads")
