"""Retention: each tenant's months, the links where archived months end, runs and restores, and a
definer function that drops a month's partition only when its rows are exactly those archived.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-22
"""

from alembic import op

from kit.migrations import CURRENT_TENANT, tenant_policy_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ROLE = "tenantry_audit"
# Set transaction-locally by the retention run alone: it reads every scope's events of a month.
RETENTION = "current_setting('app.audit_retention', true) = 'on'"

# Detaches and drops one month's partition, only if it holds, scope by scope,
# exactly the counts that were archived and verified (expected: {scope: count}),
# the month is over, and every scope's last archived link is recorded.
# SECURITY DEFINER: the runtime role owns no table; this is the only way it
# removes events, and only whole months it has archived.
DROP_ARCHIVED_MONTH = """
    CREATE FUNCTION audit.drop_archived_month(month date, expected jsonb) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit SET timezone = 'UTC' AS $$
    DECLARE
      partition_name text := 'events_' || to_char(month, 'YYYY_MM');
      found jsonb;
      dropped bigint;
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtext('audit.ensure_monthly_partitions'));
      IF month <> date_trunc('month', month)::date OR month + interval '1 month' > date_trunc('month', now()) THEN
        RAISE EXCEPTION 'only a past month can be dropped' USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF to_regclass('audit.' || partition_name) IS NULL THEN
        RAISE EXCEPTION 'no partition for %', month USING ERRCODE = 'undefined_table';
      END IF;
      PERFORM set_config('app.audit_retention', 'on', true);
      EXECUTE format(
        'SELECT coalesce(jsonb_object_agg(scope, events), ''{}'') FROM '
        '(SELECT coalesce(tenant_id::text, ''platform'') AS scope, count(*) AS events FROM audit.%I GROUP BY 1) AS s',
        partition_name) INTO found;
      IF found <> expected THEN
        RAISE EXCEPTION 'the partition of % no longer holds what was archived', month
          USING ERRCODE = 'serialization_failure';
      END IF;
      IF EXISTS (SELECT 1 FROM jsonb_object_keys(expected) AS scope
                 WHERE NOT EXISTS (SELECT 1 FROM audit.archived_links AS link
                                   WHERE link.scope = scope.scope AND link.month = drop_archived_month.month)) THEN
        RAISE EXCEPTION 'an archived scope of % has no recorded last link', month
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      SELECT coalesce(sum(value::bigint), 0) INTO dropped FROM jsonb_each_text(expected);
      EXECUTE format('ALTER TABLE audit.events DETACH PARTITION audit.%I', partition_name);
      EXECUTE format('DROP TABLE audit.%I', partition_name);
      RETURN dropped;
    END $$
"""


def upgrade() -> None:
    # A tenant's own retention in months; no row means the platform default.
    op.execute(
        """
        CREATE TABLE audit.retention_policies (
            scope text PRIMARY KEY,
            months integer NOT NULL CHECK (months BETWEEN 1 AND 1200),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    for statement in tenant_policy_sql("audit.retention_policies", f"scope = {CURRENT_TENANT}"):
        op.execute(statement)
    op.execute(f"CREATE POLICY retention_reads_all ON audit.retention_policies FOR SELECT USING ({RETENTION})")
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON audit.retention_policies TO "{ROLE}"')

    # Where each scope's chain stood at the end of each archived month: the
    # live chain resumes after the newest, and exports anchor on them.
    op.execute(
        """
        CREATE TABLE audit.archived_links (
            scope text NOT NULL,
            sequence bigint NOT NULL,
            chain_hash bytea NOT NULL,
            month date NOT NULL,
            PRIMARY KEY (scope, sequence)
        )
        """
    )
    for statement in tenant_policy_sql("audit.archived_links", f"scope = {CURRENT_TENANT}"):
        op.execute(statement)
    op.execute(f"CREATE POLICY retention_all ON audit.archived_links USING ({RETENTION}) WITH CHECK ({RETENTION})")
    op.execute(f'GRANT SELECT, INSERT ON audit.archived_links TO "{ROLE}"')

    # The retention run reads every scope's events of the month it archives.
    op.execute(f"CREATE POLICY retention_reads_all ON audit.events FOR SELECT USING ({RETENTION})")

    # Platform-level bookkeeping (no tenant's data): what each run did, and months restored for a query.
    op.execute(
        """
        CREATE TABLE audit.retention_runs (
            id bigserial PRIMARY KEY,
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL DEFAULT now(),
            month date,
            outcome text NOT NULL,
            message text NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE audit.restored_months (
            month date PRIMARY KEY,
            restored_at timestamptz NOT NULL DEFAULT now(),
            hold_until timestamptz NOT NULL
        )
        """
    )
    op.execute(f'GRANT SELECT, INSERT ON audit.retention_runs TO "{ROLE}"')
    op.execute(f'GRANT USAGE ON SEQUENCE audit.retention_runs_id_seq TO "{ROLE}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON audit.restored_months TO "{ROLE}"')

    op.execute(DROP_ARCHIVED_MONTH)
    op.execute("REVOKE ALL ON FUNCTION audit.drop_archived_month(date, jsonb) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION audit.drop_archived_month(date, jsonb) TO "{ROLE}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION audit.drop_archived_month(date, jsonb)")
    op.execute("DROP POLICY retention_reads_all ON audit.events")
    op.execute("DROP TABLE audit.restored_months")
    op.execute("DROP TABLE audit.retention_runs")
    op.execute("DROP TABLE audit.archived_links")
    op.execute("DROP TABLE audit.retention_policies")
