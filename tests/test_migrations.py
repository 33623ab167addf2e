"""Each service's Alembic history upgrades, downgrades and upgrades again on an empty database."""

from __future__ import annotations

import psycopg
import pytest

from kit import migrations

TABLES = {
    "auth": {
        "users",
        "tenant_directory",
        "memberships",
        "sessions",
        "refresh_tokens",
        "session_revocations",
        "signing_keys",
        "outbox",
    },
    "tenants": {"tenants", "outbox"},
    "audit": {"events", "chain_heads"},
}


def tables(url: str, schema: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
            (schema,),
        ).fetchall()
    return {row[0] for row in rows} - {"alembic_version"}


@pytest.mark.parametrize("service", ["auth", "tenants", "audit"])
def test_upgrade_downgrade_upgrade_on_an_empty_database(fresh_database, service: str) -> None:  # type: ignore[no-untyped-def]
    url = fresh_database()
    migrations.upgrade(service, url)
    assert tables(url, service) == TABLES[service]
    migrations.downgrade(service, url, "base")
    assert tables(url, service) == set()
    migrations.upgrade(service, url)
    assert tables(url, service) == TABLES[service]
    with psycopg.connect(url) as connection:
        version = connection.execute(f"SELECT version_num FROM {service}.alembic_version").fetchone()
    assert version is not None


def test_every_service_keeps_its_own_history(fresh_database) -> None:  # type: ignore[no-untyped-def]
    url = fresh_database()
    for service in ("auth", "tenants", "audit"):
        migrations.upgrade(service, url)
    migrations.downgrade("tenants", url, "base")
    assert tables(url, "auth") == TABLES["auth"] and tables(url, "audit") == TABLES["audit"]
    assert tables(url, "tenants") == set()
