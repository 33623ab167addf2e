"""kit.db's unit of work: an anonymous one binds nothing, and sees nothing a bound one saw,
on the very pooled connection that was bound (every binding is transaction-local)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, text

from kit.db import bind_scope
from services.tenants.models import Tenant
from tests.tenants.test_hot_read import counted_database, provisioned_tenant


def test_an_anonymous_unit_of_work_costs_no_binding_and_sees_no_tenant_after_a_bound_one(database_url: str) -> None:
    async def scenario() -> dict[str, object]:
        # One pooled connection: every unit of work below runs on the same one.
        async with counted_database(database_url) as (database, counter):
            tenant = await provisioned_tenant(database)
            seen: dict[str, object] = {}
            before = counter.round_trips
            async with database.unit_of_work(scope=str(tenant.id)) as session:
                seen["bound"] = (await session.execute(select(func.count()).select_from(Tenant))).scalar_one()
            seen["bound round trips"] = counter.round_trips - before

            before = counter.round_trips
            async with database.unit_of_work(scope="") as session:
                seen["anonymous"] = (await session.execute(select(func.count()).select_from(Tenant))).scalar_one()
            seen["anonymous round trips"] = counter.round_trips - before
            async with database.unit_of_work(scope="") as session:
                seen["setting"] = (
                    await session.execute(text("SELECT current_setting('app.tenant_id', true)"))
                ).scalar_one()

            # A unit of work that binds and then fails leaves nothing bound either.
            try:
                async with database.unit_of_work(scope="") as session:
                    await bind_scope(session, tenant=tenant.id)
                    raise RuntimeError("part-way")
            except RuntimeError:
                pass
            async with database.unit_of_work(scope="") as session:
                seen["after a failed one"] = (
                    await session.execute(select(func.count()).select_from(Tenant))
                ).scalar_one()
            return seen

    seen = asyncio.run(scenario())
    assert seen["bound"] == 1
    assert seen["anonymous"] == 0 and seen["setting"] in (None, "")
    assert seen["after a failed one"] == 0
    # BEGIN, the binding, the SELECT, COMMIT; and without the binding.
    assert seen["bound round trips"] == 4
    assert seen["anonymous round trips"] == 3
