"""The gateway's bound on rate-limited calls in flight: past it, 429 at once."""

from __future__ import annotations

import grpc
import pytest

from gateway.edge import InFlightLimit
from gateway.status import GatewayError


def test_calls_past_the_limit_are_refused_at_once_and_slots_come_back() -> None:
    limit = InFlightLimit(2)
    login, refresh = "tenantry.auth.v1.AuthService.Login", "tenantry.auth.v1.AuthService.Refresh"
    with limit.slot(login), limit.slot(login):
        with pytest.raises(GatewayError) as refused, limit.slot(login):
            pass
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.headers["Retry-After"] == "1"
        with limit.slot(refresh):  # each method has its own bound
            pass
    with limit.slot(login), limit.slot(login):  # released, even after the refusal
        pass


def test_a_failed_call_gives_its_slot_back() -> None:
    limit = InFlightLimit(1)
    with pytest.raises(RuntimeError), limit.slot("m"):
        raise RuntimeError("upstream failed")
    with limit.slot("m"):
        pass
