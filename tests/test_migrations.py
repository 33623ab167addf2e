"""Each service's Alembic history upgrades, downgrades and upgrades again on an empty database."""

from __future__ import annotations

import uuid

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
        "roles",
        "invitations",
        "email_outbox",
        "account_tokens",
        "throttles",
        "api_keys",
        "service_accounts",
        "service_account_credentials",
        "client_assertions",
    },
    "tenants": {"tenants", "outbox", "system_settings"},
    "audit": {"events", "chain_heads", "retention_policies", "archived_links", "retention_runs", "restored_months"},
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


def test_auth_memberships_migrate_with_data_both_ways(fresh_database) -> None:  # type: ignore[no-untyped-def]
    """0001's members become active with their built-in role and keep their
    passwords; the way down keeps only what 0001 can express; up again works."""
    url = fresh_database()
    migrations.upgrade("auth", url, "0001")
    tenant, user = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url) as connection:
        connection.execute("INSERT INTO auth.tenant_directory VALUES (%s, 'migrated', true)", (tenant,))
        connection.execute(
            "INSERT INTO auth.users VALUES (%s, 'old@example.test', 'Old Member', '$2b$04$hash', false, now(), now())",
            (user,),
        )
        connection.execute(
            "INSERT INTO auth.memberships VALUES (%s, %s, %s, 'admin', now())", (uuid.uuid4(), tenant, user)
        )
    migrations.upgrade("auth", url)
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT m.role, m.status, m.joined_via, u.password_hash, u.email_verified_at "
            "FROM auth.memberships m JOIN auth.users u ON u.id = m.user_id"
        ).fetchone()
        assert row == ("admin", "active", "migration", "$2b$04$hash", None)
        # Data of the new revision: a custom role held by a second member, a removed member.
        other, gone = uuid.uuid4(), uuid.uuid4()
        for person, email in ((other, "custom@example.test"), (gone, "gone@example.test")):
            connection.execute(
                "INSERT INTO auth.users (id, email, full_name, password_hash, created_at, updated_at) "
                "VALUES (%s, %s, 'P', 'h', now(), now())",
                (person, email),
            )
        connection.execute(
            "INSERT INTO auth.roles VALUES (%s, 'field_worker', '', ARRAY['app.tickets.write'], now(), now())",
            (tenant,),
        )
        for person, role, status in ((other, "field_worker", "active"), (gone, "viewer", "removed")):
            connection.execute(
                "INSERT INTO auth.memberships (id, tenant_id, user_id, role, status, joined_via, created_at) "
                "VALUES (%s, %s, %s, %s, %s, 'invitation', now())",
                (uuid.uuid4(), tenant, person, role, status),
            )
    migrations.downgrade("auth", url, "0001")
    with psycopg.connect(url) as connection:
        left = connection.execute("SELECT user_id, role FROM auth.memberships").fetchall()
    # The custom role and the removed member would grant what 0001 cannot limit: gone.
    assert left == [(user, "admin")]
    migrations.upgrade("auth", url)
    assert tables(url, "auth") == TABLES["auth"]
