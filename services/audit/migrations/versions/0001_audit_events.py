"""Append-only audit events, partitioned by month, readable per tenant.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from alembic import op

from kit.migrations import CURRENT_TENANT, drop_role_sql, ensure_role_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROLE = "tenantry_audit"


def upgrade() -> None:
    op.execute(ensure_role_sql(ROLE))
    op.execute(
        """
        CREATE TABLE audit.events (
            id uuid NOT NULL,
            tenant_id uuid,
            user_id uuid,
            action varchar(100) NOT NULL,
            resource_type varchar(100) NOT NULL,
            resource_id varchar(200) NOT NULL,
            details jsonb NOT NULL DEFAULT '{}'::jsonb,
            ip_address inet,
            user_agent varchar(512),
            request_id varchar(128),
            created_at timestamptz NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (id, created_at)
        ) PARTITION BY RANGE (created_at)
        """
    )
    op.execute("CREATE INDEX events_tenant_created ON audit.events (tenant_id, created_at DESC, id DESC)")
    # Append-only in the database itself, whoever connects: the triggers
    # refuse UPDATE, DELETE and TRUNCATE even to the table's owner, and the
    # runtime role is granted nothing but SELECT and INSERT.
    op.execute(
        """
        CREATE FUNCTION audit.refuse_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON audit.events "
        "FOR EACH ROW EXECUTE FUNCTION audit.refuse_mutation()"
    )
    op.execute(
        "CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON audit.events "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_mutation()"
    )
    # Partitions are made by this function, owned by the migration role, so
    # that the runtime role can keep months ready without owning anything.
    # Truncate triggers are per table, so each partition gets its own.
    op.execute(
        """
        CREATE FUNCTION audit.ensure_monthly_partitions(first_month date, months integer)
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
              created := created + 1;
            END IF;
          END LOOP;
          RETURN created;
        END $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION audit.ensure_monthly_partitions(date, integer) FROM PUBLIC")
    op.execute("SELECT audit.ensure_monthly_partitions(current_date, 4)")

    op.execute("ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit.events FORCE ROW LEVEL SECURITY")
    # Platform-level events (no tenant) are visible in the platform scope only.
    op.execute(
        "CREATE POLICY tenant_read ON audit.events FOR SELECT "
        f"USING (coalesce(tenant_id::text, 'platform') = {CURRENT_TENANT})"
    )
    # Ingest binds each event's tenant in turn, so a row can only be written
    # in its own tenant's scope (ON CONFLICT checks the read policy too).
    op.execute(
        "CREATE POLICY tenant_write ON audit.events FOR INSERT "
        f"WITH CHECK (coalesce(tenant_id::text, 'platform') = {CURRENT_TENANT})"
    )

    op.execute(f'GRANT USAGE ON SCHEMA audit TO "{ROLE}"')
    op.execute(f'GRANT SELECT, INSERT ON audit.events TO "{ROLE}"')
    op.execute(f'GRANT EXECUTE ON FUNCTION audit.ensure_monthly_partitions(date, integer) TO "{ROLE}"')


def downgrade() -> None:
    op.execute("DROP TABLE audit.events")
    op.execute("DROP FUNCTION audit.ensure_monthly_partitions(date, integer)")
    op.execute("DROP FUNCTION audit.refuse_mutation()")
    op.execute(f'REVOKE ALL ON SCHEMA audit FROM "{ROLE}"')
    op.execute(drop_role_sql(ROLE))
