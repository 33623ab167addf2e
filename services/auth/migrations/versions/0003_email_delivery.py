"""Email delivery: when each queued message is next tried, the email sender's view of every tenant's
outbox, operators' view of the delivery log, and the language people want their emails in.

Queued messages are due at once (their creation time); sent and failed ones have no next attempt.

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

# The value of app.tenant_id bound by the email sender alone (services/auth/service/email_delivery.py).
EMAIL_SENDER_SCOPE = "email-sender"
TENANT_ONLY = f"coalesce(tenant_id::text, 'platform') = {CURRENT_TENANT}"


def upgrade() -> None:
    op.execute("ALTER TABLE auth.users ADD COLUMN preferred_language varchar(10)")
    op.execute("ALTER TABLE auth.email_outbox ADD COLUMN next_attempt_at timestamptz DEFAULT now()")
    op.execute("UPDATE auth.email_outbox SET next_attempt_at = CASE WHEN status = 'queued' THEN created_at END")
    op.execute(
        "ALTER TABLE auth.email_outbox ADD CONSTRAINT email_outbox_queued_has_next_attempt "
        "CHECK (status <> 'queued' OR next_attempt_at IS NOT NULL)"
    )
    op.execute("DROP INDEX auth.email_outbox_queued")
    op.execute("CREATE INDEX email_outbox_due ON auth.email_outbox (next_attempt_at) WHERE status = 'queued'")
    # The delivery log, newest first: per tenant, and everything for operators.
    op.execute("CREATE INDEX email_outbox_tenant_created ON auth.email_outbox (tenant_id, created_at DESC, id DESC)")
    op.execute("CREATE INDEX email_outbox_created ON auth.email_outbox (created_at DESC, id DESC)")
    # The sender must claim every tenant's messages. It binds a scope of its
    # own that no caller can have (a caller's scope is a tenant id, 'platform'
    # or nothing), and this policy names it, so the runtime role keeps
    # NOBYPASSRLS and what crosses tenants is written here, in one place. A
    # SECURITY DEFINER function would not do: FORCE ROW LEVEL SECURITY binds
    # the table's owner too unless it is a superuser, which production
    # migrations need not be. Binding each row's tenant first would need a
    # cross-tenant read of its own to find the tenants. Operators (scope
    # 'platform') read the whole delivery log.
    op.execute("DROP POLICY tenant_isolation ON auth.email_outbox")
    op.execute(
        "CREATE POLICY tenant_isolation ON auth.email_outbox USING "
        f"({TENANT_ONLY} OR {CURRENT_TENANT} IN ('platform', '{EMAIL_SENDER_SCOPE}'))"
    )


def downgrade() -> None:
    op.execute("DROP POLICY tenant_isolation ON auth.email_outbox")
    op.execute(f"CREATE POLICY tenant_isolation ON auth.email_outbox USING ({TENANT_ONLY})")
    op.execute("DROP INDEX auth.email_outbox_created")
    op.execute("DROP INDEX auth.email_outbox_tenant_created")
    op.execute("DROP INDEX auth.email_outbox_due")
    op.execute("CREATE INDEX email_outbox_queued ON auth.email_outbox (created_at) WHERE status = 'queued'")
    op.execute("ALTER TABLE auth.email_outbox DROP CONSTRAINT email_outbox_queued_has_next_attempt")
    op.execute("ALTER TABLE auth.email_outbox DROP COLUMN next_attempt_at")
    op.execute("ALTER TABLE auth.users DROP COLUMN preferred_language")
