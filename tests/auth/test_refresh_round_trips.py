"""Round trips to PostgreSQL per refresh, counted at the asyncpg connection: deterministic, so a regression fails."""

from __future__ import annotations

import asyncio

import jwt

from benchmarks.round_trips import refresh_round_trips
from tests.stack import Stack


def test_a_refresh_costs_three_round_trips_and_still_carries_the_grant(stack: Stack) -> None:
    tenant = stack.create_tenant("trips")
    counted, access_token = asyncio.run(refresh_round_trips(stack.database_url, tenant.owner_refresh))
    # Open and bind; rotate; commit.
    assert counted == ["simple query", "_execute", "simple query"]
    claims = jwt.decode(access_token, options={"verify_signature": False})
    assert claims["tid"] == tenant.id
    assert claims["roles"] == ["owner"]
    assert "app.*" in claims["perms"]
