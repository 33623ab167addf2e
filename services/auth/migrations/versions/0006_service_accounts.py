"""Service accounts: machine identities of a tenant or of the platform, their credentials (client secrets stored
as SHA-256 hashes, public keys for private_key_jwt), and the client assertions already used (RFC 7523 jti).

Revision ID: 0006
Revises: 0004 (the integrator rechains it after 0005)
Create Date: 2026-11-22
"""

from alembic import op

from kit.migrations import CURRENT_TENANT, tenant_policy_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ROLE = "tenantry_auth"
TABLES = ("auth.service_accounts", "auth.service_account_credentials", "auth.client_assertions")
# A tenant's rows under its own scope; the platform's (no tenant) only under
# the platform scope, which operators and the token endpoint for a platform
# client id bind, and no tenant's token can.
SCOPE_MATCHES = f"coalesce(tenant_id::text, 'platform') = {CURRENT_TENANT}"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE auth.service_accounts (
            id uuid PRIMARY KEY,
            tenant_id uuid,
            name varchar(100) NOT NULL,
            description varchar(500) NOT NULL DEFAULT '',
            permissions varchar(100)[] NOT NULL,
            created_by uuid,
            created_at timestamptz NOT NULL
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX service_accounts_name ON auth.service_accounts "
        "(coalesce(tenant_id::text, 'platform'), name)"
    )
    op.execute(
        """
        CREATE TABLE auth.service_account_credentials (
            id uuid PRIMARY KEY,
            account_id uuid NOT NULL REFERENCES auth.service_accounts (id) ON DELETE CASCADE,
            tenant_id uuid,
            type varchar(20) NOT NULL CHECK (type IN ('client_secret', 'public_key')),
            secret_hash bytea UNIQUE,
            secret_prefix varchar(16),
            kid varchar(200),
            algorithm varchar(10),
            public_jwk jsonb,
            created_at timestamptz NOT NULL,
            last_used_at timestamptz,
            CHECK ((type = 'client_secret') = (secret_hash IS NOT NULL)),
            CHECK ((type = 'public_key') = (public_jwk IS NOT NULL AND kid IS NOT NULL AND algorithm IS NOT NULL)),
            UNIQUE (account_id, kid)
        )
        """
    )
    # Assertions seen, until they expire: each jti is accepted once per client.
    op.execute(
        """
        CREATE TABLE auth.client_assertions (
            client_id varchar(100) NOT NULL,
            jti varchar(200) NOT NULL,
            tenant_id uuid,
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (client_id, jti)
        )
        """
    )
    op.execute("CREATE INDEX client_assertions_expiry ON auth.client_assertions (client_id, expires_at)")
    for table in TABLES:
        for statement in tenant_policy_sql(table, SCOPE_MATCHES):
            op.execute(statement)
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {", ".join(TABLES)} TO "{ROLE}"')


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE {table}")
