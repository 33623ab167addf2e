"""Account flows: emailed single-use tokens (verification, password reset), throttles, the client of each
session, which tenants let people register themselves, and the names a tenant's emails carry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from alembic import op

from kit.migrations import CURRENT_SUBJECT, tenant_policy_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROLE = "tenantry_auth"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE auth.account_tokens (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL REFERENCES auth.users (id),
            purpose varchar(30) NOT NULL CHECK (purpose IN ('email_verification', 'password_reset')),
            token_hash bytea NOT NULL UNIQUE,
            created_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            used_at timestamptz
        )
        """
    )
    op.execute("CREATE INDEX account_tokens_user ON auth.account_tokens (user_id, purpose)")
    # A person's own tokens only: the token carries its user, bound as the subject before the lookup.
    for statement in tenant_policy_sql("auth.account_tokens", f"user_id::text = {CURRENT_SUBJECT}"):
        op.execute(statement)
    # Counters keyed by a hash of an email or a client address: no tenant data, so no row-level security.
    op.execute(
        """
        CREATE TABLE auth.throttles (
            key varchar(100) PRIMARY KEY,
            hits integer NOT NULL,
            window_started_at timestamptz NOT NULL,
            blocked_until timestamptz
        )
        """
    )
    op.execute("ALTER TABLE auth.sessions ADD COLUMN ip_address inet, ADD COLUMN user_agent varchar(512)")
    op.execute(
        """
        ALTER TABLE auth.tenant_directory
            ADD COLUMN registration_enabled boolean NOT NULL DEFAULT false,
            ADD COLUMN registration_role varchar(40),
            ADD COLUMN email_sender_name varchar(100),
            ADD COLUMN email_product_name varchar(100)
        """
    )
    # An account's own emails (a password reset, say) belong to no tenant. Any
    # request may queue one; only operators and the sender read them.
    op.execute("CREATE POLICY account_emails ON auth.email_outbox FOR INSERT WITH CHECK (tenant_id IS NULL)")
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON auth.account_tokens, auth.throttles TO "{ROLE}"')


def downgrade() -> None:
    op.execute("DROP POLICY account_emails ON auth.email_outbox")
    op.execute(
        "ALTER TABLE auth.tenant_directory DROP COLUMN registration_enabled, DROP COLUMN registration_role, "
        "DROP COLUMN email_sender_name, DROP COLUMN email_product_name"
    )
    op.execute("ALTER TABLE auth.sessions DROP COLUMN ip_address, DROP COLUMN user_agent")
    op.execute("DROP TABLE auth.throttles")
    op.execute("DROP TABLE auth.account_tokens")
