"""Each new monthly partition is analyzed as it is created: with autovacuum off or
late, the planner would otherwise plan ingest's lookups on a partition it knows
nothing about.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _ensure_monthly_partitions(analyze: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION audit.ensure_monthly_partitions(first_month date, months integer)
        RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog, audit SET timezone = 'UTC' AS $$
        DECLARE
          month_start date;
          partition_name text;
          created integer := 0;
        BEGIN
          IF months < 1 OR months > 24 THEN
            RAISE EXCEPTION 'months must be between 1 and 24' USING ERRCODE = 'invalid_parameter_value';
          END IF;
          PERFORM pg_advisory_xact_lock(hashtext('audit.ensure_monthly_partitions'));
          FOR i IN 0 .. months - 1 LOOP
            month_start := (date_trunc('month', first_month) + make_interval(months => i))::date;
            partition_name := 'events_' || to_char(month_start, 'YYYY_MM');
            IF to_regclass('audit.' || partition_name) IS NULL THEN
              EXECUTE format(
                'CREATE TABLE audit.%I PARTITION OF audit.events FOR VALUES FROM (%L) TO (%L)',
                partition_name, month_start::timestamptz, (month_start + interval '1 month')::timestamptz);
              EXECUTE format(
                'CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON audit.%I '
                'FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_mutation()', partition_name);
              {analyze}
              created := created + 1;
            END IF;
          END LOOP;
          RETURN created;
        END $$
    """


def upgrade() -> None:
    op.execute(_ensure_monthly_partitions("EXECUTE format('ANALYZE audit.%I', partition_name);"))
    op.execute("ANALYZE audit.events")


def downgrade() -> None:
    op.execute(_ensure_monthly_partitions(""))
