"""The event model grows: category, outcome and error, session, actor, target, and who recorded it; the
chain format each event was hashed with; and the lookup applications' own ingest needs.

Existing events keep chain_format 1 (their hash covers the first model's fields only) and still verify;
new events are hashed in format 2, which covers every field. The column is added with a default so that
existing rows get 1 without being rewritten, and the default is then dropped, so that an insert which
forgets to say its format fails rather than being verified against the wrong one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ROLE = "tenantry_audit"

NEW_COLUMNS = (
    ("category", "varchar(20)"),
    ("outcome", "varchar(10)"),
    ("error_message", "varchar(1000)"),
    ("session_id", "varchar(128)"),
    ("actor_type", "varchar(20)"),
    ("actor_id", "varchar(200)"),
    ("target_type", "varchar(100)"),
    ("target_id", "varchar(200)"),
    ("target_name", "varchar(200)"),
    ("recorded_by_type", "varchar(20)"),
    ("recorded_by_id", "varchar(200)"),
)

# Like open_chain_for_append (0005), for events an application sends: an
# application may resend an event with another time (a bug, or on purpose),
# so its ids are looked up by id alone, among the events since `since` (the
# oldest time the application ingest accepts, less a margin), which prunes
# the probe to the two or three newest partitions. Returns the stored
# (id, created_at) of the ids found, for the caller to compare contents.
OPEN_CHAIN_FOR_APPLICATION = """
    CREATE FUNCTION audit.open_chain_for_application(append_scope text, ids uuid[], since timestamptz,
        OUT head_sequence bigint, OUT head_hash bytea, OUT stored_ids uuid[], OUT stored_created timestamptz[])
    LANGUAGE plpgsql SECURITY INVOKER SET enable_seqscan = off AS $$
    BEGIN
      PERFORM pg_catalog.set_config('app.tenant_id', append_scope, true);
      INSERT INTO audit.chain_heads AS head (scope, sequence, chain_hash) VALUES (append_scope, 0, '')
      ON CONFLICT (scope) DO UPDATE SET scope = head.scope
      RETURNING head.sequence, head.chain_hash INTO head_sequence, head_hash;
      SELECT coalesce(pg_catalog.array_agg(event.id), '{}'), coalesce(pg_catalog.array_agg(event.created_at), '{}')
      INTO stored_ids, stored_created
      FROM audit.events AS event
      WHERE event.id = ANY(ids) AND event.created_at >= since;
    END $$
"""
_SIGNATURE = "audit.open_chain_for_application(text, uuid[], timestamptz)"


def upgrade() -> None:
    columns = ", ".join(f"ADD COLUMN {name} {kind}" for name, kind in NEW_COLUMNS)
    op.execute(f"ALTER TABLE audit.events {columns}, ADD COLUMN chain_format smallint NOT NULL DEFAULT 1")
    op.execute("ALTER TABLE audit.events ALTER COLUMN chain_format DROP DEFAULT")
    # The selective lookups: everything in one session, everything done to
    # one target. Partial, so events without them cost ingest nothing more.
    # Category, outcome and actor type are few values each: they filter the
    # tenant's newest-first scan (events_tenant_created) instead.
    op.execute(
        "CREATE INDEX events_session ON audit.events (tenant_id, session_id, created_at DESC) "
        "WHERE session_id IS NOT NULL"
    )
    op.execute(
        "CREATE INDEX events_target ON audit.events (tenant_id, target_type, target_id, created_at DESC) "
        "WHERE target_id IS NOT NULL"
    )
    op.execute(OPEN_CHAIN_FOR_APPLICATION)
    op.execute(f"REVOKE ALL ON FUNCTION {_SIGNATURE} FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION {_SIGNATURE} TO "{ROLE}"')


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {_SIGNATURE}")
    op.execute("DROP INDEX audit.events_target")
    op.execute("DROP INDEX audit.events_session")
    columns = ", ".join(f"DROP COLUMN {name}" for name, _ in NEW_COLUMNS)
    op.execute(f"ALTER TABLE audit.events {columns}, DROP COLUMN chain_format")
