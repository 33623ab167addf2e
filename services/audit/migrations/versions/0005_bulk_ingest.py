"""Bulk ingest: each new monthly partition is analyzed as it is created (with
autovacuum off or late, the planner would otherwise plan ingest's lookups on a
partition it knows nothing about), and one function opens a scope's share of a
batch in a single round trip.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLE = "tenantry_audit"


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


# Binds the scope (transaction-local, as bind_scope does), then locks its chain
# head, creating it at the chain's start if need be (DO UPDATE locks the row),
# then finds which of the events are stored already. In this order, in one
# round trip: statements of a function run in sequence, so row-level security
# sees the binding, and the stored events are looked up once the lock is held,
# so a batch racing a retry of itself waits and then leaves out what it stored.
# SECURITY INVOKER: every policy applies as to the runtime role's own queries.
# Each event is looked up by its whole primary key in a LATERAL subquery with a
# LIMIT, which PostgreSQL cannot flatten into a join, so it is one probe in the
# one partition the event's time prunes to at run time. enable_seqscan is off
# for the function alone, so that probe is the primary key's index whatever
# the statistics say or however old the generic plan is: a partition that
# looked small when planned is never scanned whole once it has grown.
OPEN_CHAIN_FOR_APPEND = """
    CREATE FUNCTION audit.open_chain_for_append(append_scope text, ids uuid[], created timestamptz[],
        OUT head_sequence bigint, OUT head_hash bytea, OUT stored_ids uuid[])
    LANGUAGE plpgsql SECURITY INVOKER SET enable_seqscan = off AS $$
    BEGIN
      PERFORM pg_catalog.set_config('app.tenant_id', append_scope, true);
      INSERT INTO audit.chain_heads AS head (scope, sequence, chain_hash) VALUES (append_scope, 0, '')
      ON CONFLICT (scope) DO UPDATE SET scope = head.scope
      RETURNING head.sequence, head.chain_hash INTO head_sequence, head_hash;
      SELECT coalesce(pg_catalog.array_agg(candidate.id), '{}') INTO stored_ids
      FROM unnest(ids, created) AS candidate(id, created_at)
      CROSS JOIN LATERAL (
        SELECT 1 FROM audit.events AS event
        WHERE event.id = candidate.id AND event.created_at = candidate.created_at
        LIMIT 1
      ) AS found;
    END $$
"""


def upgrade() -> None:
    op.execute(_ensure_monthly_partitions("EXECUTE format('ANALYZE audit.%I', partition_name);"))
    op.execute("ANALYZE audit.events")
    op.execute(OPEN_CHAIN_FOR_APPEND)
    op.execute("REVOKE ALL ON FUNCTION audit.open_chain_for_append(text, uuid[], timestamptz[]) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION audit.open_chain_for_append(text, uuid[], timestamptz[]) TO "{ROLE}"')


def downgrade() -> None:
    op.execute("DROP FUNCTION audit.open_chain_for_append(text, uuid[], timestamptz[])")
    op.execute(_ensure_monthly_partitions(""))
