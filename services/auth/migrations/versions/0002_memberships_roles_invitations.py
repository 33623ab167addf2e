"""Membership status, per-tenant roles, invitations, verified emails and default tenants, the email outbox.

Existing memberships become active with their built-in role; existing users keep their passwords, and their
emails count as unverified until proven (so an invitation to one of them asks for a new password).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

from kit.migrations import CURRENT_TENANT, tenant_policy_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLE = "tenantry_auth"
NEW_TABLES = ["roles", "invitations", "email_outbox"]


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE auth.users
            ADD COLUMN email_verified_at timestamptz,
            ADD COLUMN default_tenant_id uuid REFERENCES auth.tenant_directory (tenant_id)
        """
    )
    op.execute("ALTER TABLE auth.memberships DROP CONSTRAINT memberships_role_check")
    op.execute(
        """
        ALTER TABLE auth.memberships
            ALTER COLUMN role TYPE varchar(40),
            ADD COLUMN status varchar(20) NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'removed')),
            ADD COLUMN joined_via varchar(20) NOT NULL DEFAULT 'migration',
            ADD COLUMN invited_by uuid,
            ADD COLUMN last_login_at timestamptz,
            ADD COLUMN updated_at timestamptz
        """
    )
    # Defaults only for the rows that existed; new rows say how they came.
    op.execute("ALTER TABLE auth.memberships ALTER COLUMN status DROP DEFAULT, ALTER COLUMN joined_via DROP DEFAULT")
    op.execute(
        """
        CREATE TABLE auth.roles (
            tenant_id uuid NOT NULL REFERENCES auth.tenant_directory (tenant_id),
            name varchar(40) NOT NULL,
            description varchar(500) NOT NULL,
            permissions text[] NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, name)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE auth.invitations (
            id uuid PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES auth.tenant_directory (tenant_id),
            email varchar(254) NOT NULL CHECK (email = lower(email)),
            role varchar(40) NOT NULL,
            token_hash bytea NOT NULL UNIQUE,
            invited_by uuid,
            created_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            accepted_at timestamptz,
            accepted_by uuid,
            revoked_at timestamptz
        )
        """
    )
    # At most one open invitation per email and tenant: a new one replaces it.
    op.execute(
        """
        CREATE UNIQUE INDEX invitations_open_per_email ON auth.invitations (tenant_id, email)
        WHERE accepted_at IS NULL AND revoked_at IS NULL
        """
    )
    op.execute("CREATE INDEX invitations_tenant_created ON auth.invitations (tenant_id, created_at DESC, id DESC)")
    # Messages waiting for the mail sender (the accounts issue builds it); a
    # payload holds a link with a token, so it is tenant-guarded like the rest.
    op.execute(
        """
        CREATE TABLE auth.email_outbox (
            id uuid PRIMARY KEY,
            tenant_id uuid,
            recipient varchar(254) NOT NULL,
            template varchar(60) NOT NULL,
            language varchar(10) NOT NULL,
            payload jsonb,
            status varchar(10) NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
            attempts integer NOT NULL DEFAULT 0,
            last_error varchar(500),
            created_at timestamptz NOT NULL,
            sent_at timestamptz
        )
        """
    )
    op.execute("CREATE INDEX email_outbox_queued ON auth.email_outbox (created_at) WHERE status = 'queued'")
    for statement in tenant_policy_sql("auth.roles", f"tenant_id::text = {CURRENT_TENANT}"):
        op.execute(statement)
    # A tenant sees its invitations; a person with a verified email, bound as
    # app.subject_email, sees the invitations sent to it (for GET /auth/me).
    for statement in tenant_policy_sql(
        "auth.invitations",
        f"tenant_id::text = {CURRENT_TENANT} OR email = current_setting('app.subject_email', true)",
    ):
        op.execute(statement)
    for statement in tenant_policy_sql(
        "auth.email_outbox", f"coalesce(tenant_id::text, 'platform') = {CURRENT_TENANT}"
    ):
        op.execute(statement)
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join("auth." + t for t in NEW_TABLES)} TO "{ROLE}"')


def downgrade() -> None:
    for table in reversed(NEW_TABLES):
        op.execute(f"DROP TABLE auth.{table}")
    # The old schema knows only active members with built-in roles: anything
    # else would grant what it no longer should, so it goes.
    op.execute("DELETE FROM auth.memberships WHERE status <> 'active' OR role NOT IN ('owner', 'admin', 'viewer')")
    op.execute(
        """
        ALTER TABLE auth.memberships
            DROP COLUMN status, DROP COLUMN joined_via, DROP COLUMN invited_by,
            DROP COLUMN last_login_at, DROP COLUMN updated_at,
            ALTER COLUMN role TYPE varchar(20),
            ADD CONSTRAINT memberships_role_check CHECK (role IN ('owner', 'admin', 'viewer'))
        """
    )
    op.execute("ALTER TABLE auth.users DROP COLUMN email_verified_at, DROP COLUMN default_tenant_id")
