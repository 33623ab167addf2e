"""Alembic, the same way for every service: one history per service, its
version table inside the service's own schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

SERVICES_ROOT = Path(__file__).resolve().parent.parent / "services"


def alembic_config(service: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_ROOT / service / "migrations"))
    # Alembic's ini interpolation would eat a '%' in a password.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, database_url), revision)


def downgrade(service: str, database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(service, database_url), revision)


def run_env(schema: str) -> None:
    """The body of every service's migrations/env.py."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    asyncio.run(_run_online(url, schema))


async def _run_online(url: str, schema: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations, schema)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_migrations(connection: Connection, schema: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(connection=connection, version_table_schema=schema, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def ensure_role_sql(role: str) -> str:
    """SQL creating a runtime role that cannot log in and owns nothing.

    Roles are cluster-wide, so several databases of one cluster share it.
    """
    return f"""
    DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE "{role}" NOLOGIN NOSUPERUSER NOINHERIT NOBYPASSRLS;
      END IF;
    END $$;
    """


def drop_role_sql(role: str) -> str:
    """Drops the role if no other database of the cluster still uses it."""
    return f"""
    DO $$ BEGIN
      EXECUTE 'DROP OWNED BY "{role}"';
      DROP ROLE IF EXISTS "{role}";
    EXCEPTION WHEN dependent_objects_still_exist OR undefined_object THEN NULL;
    END $$;
    """


def tenant_policy_sql(table: str, using: str) -> list[str]:
    """Row-level security that even the table owner cannot skip."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} USING ({using})",
    ]


# The expressions policies compare against: the tenant and subject bound to
# the transaction by kit.db.bind_scope. Unset, they match nothing.
CURRENT_TENANT = "current_setting('app.tenant_id', true)"
CURRENT_SUBJECT = "current_setting('app.subject_id', true)"
