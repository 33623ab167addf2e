"""A person reads their own account events, wherever they were recorded (a failed login or a password reset
belongs to no tenant): a read-only policy on the subject the request binds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from alembic import op

from kit.migrations import CURRENT_SUBJECT

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE POLICY own_account_events ON audit.events FOR SELECT "
        f"USING (user_id::text = {CURRENT_SUBJECT} AND details->>'category' = 'auth')"
    )


def downgrade() -> None:
    op.execute("DROP POLICY own_account_events ON audit.events")
