"""The service's own schema and runtime role in the shared PostgreSQL, created if missing.

The tickets table is under FORCE ROW LEVEL SECURITY with a policy on the tenant
that tenantry-client binds per transaction; the service connects, then acts as
a role that owns no table, so the policy applies to every query it makes.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncEngine
from tenantry_client.outbox import audit_outbox_table, create_audit_outbox_sql

SCHEMA = "acme_tickets"
RUNTIME_ROLE = "acme_tickets_app"

metadata = MetaData(schema=SCHEMA)
tickets = Table(
    "tickets",
    metadata,
    Column("id", PG_UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", PG_UUID(as_uuid=True), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("reporter_id", PG_UUID(as_uuid=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
audit_outbox = audit_outbox_table(metadata, schema=SCHEMA)

TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
BOOTSTRAP = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""
    DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{RUNTIME_ROLE}') THEN
            CREATE ROLE {RUNTIME_ROLE} NOLOGIN NOBYPASSRLS;
        END IF;
    END $$
    """,
    f"GRANT {RUNTIME_ROLE} TO CURRENT_USER",
    f"""
    CREATE TABLE IF NOT EXISTS {SCHEMA}.tickets (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        title varchar(200) NOT NULL,
        description text NOT NULL,
        reporter_id uuid NOT NULL,
        created_at timestamptz NOT NULL
    )
    """,
    f"CREATE INDEX IF NOT EXISTS tickets_newest ON {SCHEMA}.tickets (tenant_id, created_at DESC, id DESC)",
    f"ALTER TABLE {SCHEMA}.tickets ENABLE ROW LEVEL SECURITY",
    f"ALTER TABLE {SCHEMA}.tickets FORCE ROW LEVEL SECURITY",
    f"DROP POLICY IF EXISTS tenant_isolation ON {SCHEMA}.tickets",
    f"CREATE POLICY tenant_isolation ON {SCHEMA}.tickets"
    f" USING (tenant_id = {TENANT}) WITH CHECK (tenant_id = {TENANT})",
    *create_audit_outbox_sql(SCHEMA),
    f"GRANT USAGE ON SCHEMA {SCHEMA} TO {RUNTIME_ROLE}",
    f"GRANT SELECT, INSERT ON {SCHEMA}.tickets TO {RUNTIME_ROLE}",
    # UPDATE for the relay's row locks (FOR UPDATE SKIP LOCKED); rows are never changed.
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON {SCHEMA}.audit_outbox TO {RUNTIME_ROLE}",
]


async def bootstrap(engine: AsyncEngine) -> None:
    """Creates what is missing; safe to run at every start. Serialised by an
    advisory lock, so replicas starting together do not race."""
    async with engine.begin() as connection:
        await connection.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('acme_tickets bootstrap'))")
        for statement in BOOTSTRAP:
            await connection.exec_driver_sql(statement)
