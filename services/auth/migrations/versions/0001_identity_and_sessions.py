"""Users, tenant directory, memberships, sessions, refresh tokens, signing keys, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from alembic import op

from kit.migrations import CURRENT_SUBJECT, CURRENT_TENANT, drop_role_sql, ensure_role_sql, tenant_policy_sql
from kit.outbox import create_outbox_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE = "tenantry_auth"
TABLES = [
    "users",
    "tenant_directory",
    "memberships",
    "sessions",
    "refresh_tokens",
    "session_revocations",
    "signing_keys",
    "outbox",
]

# A tenant sees its own rows; a user, during login and refresh before any
# tenant is chosen, sees only rows about itself.
TENANT_OR_SUBJECT = f"coalesce(tenant_id::text, 'platform') = {CURRENT_TENANT} OR user_id::text = {CURRENT_SUBJECT}"


def upgrade() -> None:
    op.execute(ensure_role_sql(ROLE))
    op.execute(
        """
        CREATE TABLE auth.users (
            id uuid PRIMARY KEY,
            email varchar(254) NOT NULL UNIQUE CHECK (email = lower(email)),
            full_name varchar(200) NOT NULL,
            password_hash varchar(100) NOT NULL,
            is_platform_admin boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE auth.tenant_directory (
            tenant_id uuid PRIMARY KEY,
            slug varchar(63) NOT NULL UNIQUE,
            is_active boolean NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE auth.memberships (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES auth.tenant_directory (tenant_id),
            user_id uuid NOT NULL REFERENCES auth.users (id),
            role varchar(20) NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
            created_at timestamptz NOT NULL,
            UNIQUE (tenant_id, user_id)
        )
        """
    )
    op.execute("CREATE INDEX memberships_user ON auth.memberships (user_id)")
    op.execute(
        """
        CREATE TABLE auth.sessions (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL REFERENCES auth.users (id),
            tenant_id uuid,
            created_at timestamptz NOT NULL,
            last_refreshed_at timestamptz,
            revoked_at timestamptz,
            revoke_reason varchar(40)
        )
        """
    )
    op.execute("CREATE INDEX sessions_tenant ON auth.sessions (tenant_id) WHERE revoked_at IS NULL")
    op.execute(
        """
        CREATE TABLE auth.refresh_tokens (
            token_hash bytea PRIMARY KEY,
            session_id uuid NOT NULL REFERENCES auth.sessions (id),
            user_id uuid NOT NULL,
            tenant_id uuid,
            created_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            used_at timestamptz
        )
        """
    )
    op.execute("CREATE INDEX refresh_tokens_session ON auth.refresh_tokens (session_id)")
    op.execute(
        """
        CREATE TABLE auth.session_revocations (
            session_id uuid PRIMARY KEY,
            revoked_until timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX session_revocations_until ON auth.session_revocations (revoked_until)")
    op.execute(
        """
        CREATE TABLE auth.signing_keys (
            kid varchar(64) PRIMARY KEY,
            private_key_pem text NOT NULL,
            public_jwk jsonb NOT NULL,
            created_at timestamptz NOT NULL,
            retired_at timestamptz
        )
        """
    )
    for statement in create_outbox_sql("auth"):
        op.execute(statement)

    for statement in tenant_policy_sql(
        "auth.memberships", f"tenant_id::text = {CURRENT_TENANT} OR user_id::text = {CURRENT_SUBJECT}"
    ):
        op.execute(statement)
    for table in ("auth.sessions", "auth.refresh_tokens"):
        for statement in tenant_policy_sql(table, TENANT_OR_SUBJECT):
            op.execute(statement)

    op.execute(f'GRANT USAGE ON SCHEMA auth TO "{ROLE}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join("auth." + t for t in TABLES)} TO "{ROLE}"')


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE auth.{table}")
    op.execute(f'REVOKE ALL ON SCHEMA auth FROM "{ROLE}"')
    op.execute(drop_role_sql(ROLE))
