"""Row-level security: a query that forgets its tenant filter still sees one tenant."""

from __future__ import annotations

import psycopg
import pytest

from tests.stack import Stack, Tenant, eventually

# (table, runtime role, how a row names its tenant)
TENANT_TABLES = [
    ("auth.memberships", "tenantry_auth", "tenant_id"),
    ("auth.sessions", "tenantry_auth", "tenant_id"),
    ("auth.refresh_tokens", "tenantry_auth", "tenant_id"),
    ("tenants.tenants", "tenantry_tenants", "id"),
    ("audit.events", "tenantry_audit", "tenant_id"),
]


@pytest.fixture(scope="module")
def two_tenants(stack: Stack) -> tuple[Tenant, Tenant]:
    first, second = stack.create_tenant("rls"), stack.create_tenant("rls")
    for tenant in (first, second):
        eventually(lambda t=tenant: stack.audit_events(t.owner_token))
    return first, second


@pytest.mark.parametrize(("table", "role", "column"), TENANT_TABLES)
def test_unfiltered_select_sees_only_the_bound_tenant(
    stack: Stack, two_tenants, table: str, role: str, column: str
) -> None:  # type: ignore[no-untyped-def]
    first, second = two_tenants
    everything = {str(row[0]) for row in stack.sql(f"SELECT {column} FROM {table}")}
    assert {first.id, second.id} <= everything  # the rows exist...
    seen = {str(row[0]) for row in stack.sql(f"SELECT {column} FROM {table}", role=role, tenant=first.id)}
    assert seen == {first.id}  # ...but the service role sees one tenant's


@pytest.mark.parametrize(("table", "role", "column"), TENANT_TABLES)
def test_no_tenant_bound_sees_nothing(stack: Stack, two_tenants, table: str, role: str, column: str) -> None:  # type: ignore[no-untyped-def]
    assert stack.sql(f"SELECT count(*) FROM {table}", role=role, tenant="")[0][0] == 0


def test_writes_into_another_tenant_are_refused(stack: Stack, two_tenants) -> None:  # type: ignore[no-untyped-def]
    first, second = two_tenants
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        stack.sql(
            "INSERT INTO auth.memberships (id, tenant_id, user_id, role, created_at) "
            "SELECT gen_random_uuid(), %s, user_id, 'admin', now() FROM auth.memberships LIMIT 1",
            (second.id,),
            role="tenantry_auth",
            tenant=first.id,
        )
    changed = stack.sql(
        "UPDATE tenants.tenants SET name = 'taken over' WHERE id = %s RETURNING id",
        (second.id,),
        role="tenantry_tenants",
        tenant=first.id,
    )
    assert changed == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        stack.sql(
            "INSERT INTO audit.events (id, tenant_id, action, resource_type, resource_id, created_at) "
            "VALUES (gen_random_uuid(), %s, 'forged', 'x', 'x', now())",
            (second.id,),
            role="tenantry_audit",
            tenant=first.id,
        )


@pytest.mark.parametrize(
    ("role", "foreign_table"),
    [
        ("tenantry_auth", "tenants.tenants"),
        ("tenantry_auth", "audit.events"),
        ("tenantry_tenants", "auth.users"),
        ("tenantry_tenants", "audit.events"),
        ("tenantry_audit", "auth.users"),
        ("tenantry_audit", "tenants.tenants"),
    ],
)
def test_each_service_role_is_confined_to_its_schema(stack: Stack, role: str, foreign_table: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        stack.sql(f"SELECT 1 FROM {foreign_table} LIMIT 1", role=role, tenant="platform")


def test_runtime_roles_own_nothing_and_rls_is_forced(stack: Stack) -> None:
    owners = {
        row[0] for row in stack.sql("SELECT tableowner FROM pg_tables WHERE schemaname IN ('auth','tenants','audit')")
    }
    assert owners.isdisjoint({"tenantry_auth", "tenantry_tenants", "tenantry_audit"})
    for table, _, _ in TENANT_TABLES:
        forced = stack.sql(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = %s::regclass", (table,)
        )
        assert forced[0][0], table
    bypass = stack.sql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'tenantry_%%' AND (rolbypassrls OR rolsuper)")
    assert bypass == []
