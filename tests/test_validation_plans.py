"""The request check's plans: what it skips, and its benchmark, run for a moment so that it cannot rot."""

from __future__ import annotations

import sys

import pytest
from tenantry.audit.v1 import audit_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from benchmarks import validation as benchmark
from kit.errors import InvalidArgument
from kit.interceptors.validation import _plan, check_request


def test_a_message_that_can_hold_no_problem_is_not_walked() -> None:
    assert _plan(audit_service_pb2.AppendAuditEventsResponse.DESCRIPTOR).entries == ()


def test_only_the_fields_that_can_hold_a_problem_are_planned() -> None:
    planned = [entry.name for entry in _plan(audit_service_pb2.ListAuditEventsRequest.DESCRIPTOR).entries]
    assert "page_size" not in planned
    assert {"action", "start_time", "page_token"} <= set(planned)


def test_the_first_problem_in_declaration_order_is_reported_whatever_its_kind() -> None:
    # owner (field 5) is required and missing; name (field 1) holds NUL: name comes first.
    request = tenants_service_pb2.CreateTenantRequest(name="A\x00", slug="acme")
    with pytest.raises(InvalidArgument) as refused:
        check_request(request)
    assert refused.value.field == "name"
    request.name = "Acme"
    with pytest.raises(InvalidArgument) as refused:
        check_request(request)
    assert refused.value.field == "owner"


def test_the_validation_benchmark_prints_its_figure(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(benchmark, "ROUNDS", 1)
    monkeypatch.setattr(benchmark, "BATCHES_PER_ROUND", 1)
    monkeypatch.setattr(sys, "argv", ["validation"])
    benchmark.main()
    assert "µs per batch" in capsys.readouterr().out
