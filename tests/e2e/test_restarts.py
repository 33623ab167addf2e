"""Restarts and an auth outage, with real processes: revocation fails closed, keys are fetched once.

A stack of its own (its own database), so stopping auth here disturbs no other test.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenantry.audit.v1 import audit_service_pb2
from tenantry.auth.v1 import auth_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from tests.gateway.conftest import gateway_in_front, start_gateway, tenantry_gateway_env
from tests.stack import OWNER_PASSWORD, Stack, Tenant, bearer, eventually, own_stack, rpc_error

# Short, so the staleness test need not wait long; the default is 5 s.
MAX_STALENESS_SECONDS = 1.0


@pytest.fixture(scope="module")
def restart_stack(fresh_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    extra_env = {"REVOCATION_MAX_STALENESS_SECONDS": str(MAX_STALENESS_SECONDS)}
    with own_stack(fresh_database(), tmp_path_factory.mktemp("restarts"), extra_env) as running:
        yield running


@pytest.fixture(scope="module")
def restart_gateway(restart_stack: Stack) -> Iterator[str]:
    with gateway_in_front(restart_stack, "gateway-restarts") as url:
        yield url


def health(address: str) -> int | None:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.RpcError:
            return None
    return int(reply.status)


def outcome(call: Callable[[], Any]) -> str:
    """OK, or the gRPC status name of the failure."""
    try:
        call()
    except grpc.RpcError as error:
        return error.code().name  # type: ignore[no-any-return]
    return "OK"


def tenants_call(stack: Stack, token: str, timeout: float = 2) -> Callable[[], Any]:
    return lambda: stack.tenants.GetMyTenant(
        tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(token), timeout=timeout
    )


def audit_call(stack: Stack, token: str, timeout: float = 2) -> Callable[[], Any]:
    return lambda: stack.audit.ListAuditEvents(
        audit_service_pb2.ListAuditEventsRequest(page_size=1), metadata=bearer(token), timeout=timeout
    )


def second_session(stack: Stack, tenant: Tenant) -> str:
    return stack.login(tenant.owner_email, OWNER_PASSWORD, tenant.slug).access_token


def logout(stack: Stack, token: str) -> None:
    stack.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=bearer(token), timeout=10)


def test_a_logged_out_session_stays_refused_when_services_restart_while_auth_is_down(
    restart_stack: Stack, restart_gateway: str
) -> None:
    stack = restart_stack
    tenant = stack.create_tenant("restart")
    revoked = second_session(stack, tenant)
    assert outcome(tenants_call(stack, revoked)) == "OK"
    logout(stack, revoked)
    for call in (tenants_call(stack, revoked), audit_call(stack, revoked)):
        eventually(lambda call=call: outcome(call) == "UNAUTHENTICATED", timeout=5)

    seen: Counter[str] = Counter()
    auth = stack.processes["auth"]
    auth.stop()
    try:
        for name in ("tenants", "audit"):
            stack.processes[name].stop()
            stack.processes[name].start()
        for name in ("tenants", "audit"):
            eventually(lambda name=name: health(stack.processes[name].address) is not None, timeout=20)
        # Restarted without auth: no revocation snapshot, so every authenticated
        # call is refused, and the services tell load balancers to wait.
        waiting_until = time.monotonic() + 1.5
        rounds = 0
        while time.monotonic() < waiting_until or rounds < 3:
            rounds += 1
            for call in (
                tenants_call(stack, revoked),
                audit_call(stack, revoked),
                tenants_call(stack, tenant.owner_token),
            ):
                seen[outcome(call)] += 1
            reply = requests.get(
                f"{restart_gateway}/api/v1/tenants/me", headers={"Authorization": f"Bearer {revoked}"}, timeout=10
            )
            seen[f"http {reply.status_code}"] += 1
            assert reply.status_code != 200
        assert health(stack.processes["tenants"].address) != health_pb2.HealthCheckResponse.SERVING
        assert health(stack.processes["audit"].address) != health_pb2.HealthCheckResponse.SERVING
        unavailable = rpc_error(tenants_call(stack, tenant.owner_token))
        assert unavailable.code() == grpc.StatusCode.UNAVAILABLE
        assert "revocations are not loaded" in (unavailable.details() or "")
    finally:
        auth.start()
        auth.wait_serving()
    auth_back = time.monotonic()

    # Auth is back: hammer with the revoked token while the streams reconnect.
    reconnected: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=6) as pool:
        until = time.monotonic() + 2
        while time.monotonic() < until:
            for name in ("tenants", "audit"):
                serving = health(stack.processes[name].address) == health_pb2.HealthCheckResponse.SERVING
                if name not in reconnected and serving:
                    reconnected[name] = time.monotonic() - auth_back
            calls = [tenants_call(stack, revoked), audit_call(stack, revoked)] * 2
            for result in pool.map(outcome, calls):
                seen[result] += 1
            reply = requests.get(
                f"{restart_gateway}/api/v1/tenants/me", headers={"Authorization": f"Bearer {revoked}"}, timeout=10
            )
            seen[f"http {reply.status_code}"] += 1
    print(f"revoked token outcomes: {dict(seen)}; reconnected after auth was back (s): {reconnected}")
    assert seen["OK"] == 0 and seen["http 200"] == 0, seen
    assert set(reconnected) == {"tenants", "audit"}, "a service never reported SERVING again"
    assert outcome(tenants_call(stack, revoked)) == "UNAUTHENTICATED"
    assert outcome(audit_call(stack, revoked)) == "UNAUTHENTICATED"
    assert outcome(tenants_call(stack, tenant.owner_token)) == "OK"

    # A logout right after the restart reaches every service within a second.
    fresh = second_session(stack, tenant)
    assert outcome(tenants_call(stack, fresh)) == "OK" and outcome(audit_call(stack, fresh)) == "OK"
    logout(stack, fresh)
    logged_out = time.monotonic()
    eventually(lambda: outcome(tenants_call(stack, fresh)) == "UNAUTHENTICATED", timeout=1.0, interval=0.02)
    eventually(lambda: outcome(audit_call(stack, fresh)) == "UNAUTHENTICATED", timeout=1.0, interval=0.02)
    print(f"logout after the restart refused everywhere after {time.monotonic() - logged_out:.3f} s")


def test_a_service_cut_off_from_auth_refuses_tokens_once_its_list_is_stale(restart_stack: Stack) -> None:
    stack = restart_stack
    tenant = stack.create_tenant("stale")
    assert outcome(tenants_call(stack, tenant.owner_token)) == "OK"
    with stack.service_stopped("auth"):
        # Past the staleness bound the list can no longer be trusted: UNAVAILABLE, never OK.
        failure = eventually(
            lambda: (
                (error := rpc_error(tenants_call(stack, tenant.owner_token)))
                and error.code() == grpc.StatusCode.UNAVAILABLE
                and error
            ),
            timeout=MAX_STALENESS_SECONDS + 5,
        )
        assert "revocations are not current" in (failure.details() or "")
        assert outcome(audit_call(stack, tenant.owner_token)) == "UNAVAILABLE"
        # Health is re-read every 50 ms.
        eventually(lambda: health(stack.processes["tenants"].address) == health_pb2.HealthCheckResponse.NOT_SERVING)
    eventually(lambda: outcome(tenants_call(stack, tenant.owner_token)) == "OK", timeout=5)
    eventually(lambda: health(stack.processes["tenants"].address) == health_pb2.HealthCheckResponse.SERVING)


def test_a_burst_of_valid_tokens_right_after_a_restart_is_accepted(restart_stack: Stack, restart_gateway: str) -> None:
    stack = restart_stack
    tenant = stack.create_tenant("burst")
    for name in ("audit", "tenants"):
        stack.processes[name].stop()
        stack.processes[name].start()
        stack.processes[name].wait_serving()
    # Each restarted service has no keys yet: the burst's first token makes it
    # fetch them, and every other request must wait for that fetch.
    # A generous deadline: the burst is about wrong answers, not speed.
    calls = [audit_call(stack, tenant.owner_token, 20), tenants_call(stack, tenant.owner_token, 20)] * 30
    with ThreadPoolExecutor(max_workers=30) as pool:
        results = Counter(pool.map(outcome, calls))
    assert results == Counter({"OK": 60}), results


def test_the_gateway_answers_503_not_401_when_it_cannot_fetch_keys(restart_stack: Stack) -> None:
    stack = restart_stack
    tenant = stack.create_tenant("keys")
    with stack.service_stopped("auth"):
        # A gateway started now has no keys and cannot get them.
        gateway = start_gateway("gateway-no-auth", tenantry_gateway_env(stack), stack.log_dir)
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                replies = list(
                    pool.map(
                        lambda _: requests.get(
                            f"http://{gateway.address}/api/v1/tenants/me",
                            headers={"Authorization": f"Bearer {tenant.owner_token}"},
                            timeout=20,
                        ),
                        range(8),
                    )
                )
        finally:
            gateway.stop()
    assert [reply.status_code for reply in replies] == [503] * 8
    assert all(reply.headers.get("Retry-After") for reply in replies)
    assert all(reply.json()["code"] == grpc.StatusCode.UNAVAILABLE.value[0] for reply in replies)


def test_a_frozen_auth_is_noticed_by_its_silent_stream_long_before_keepalive(restart_stack: Stack) -> None:
    """SIGSTOP: auth's connections stay open but nothing comes, as with a vanished host."""
    stack = restart_stack
    tenant = stack.create_tenant("frozen")
    assert outcome(tenants_call(stack, tenant.owner_token)) == "OK"
    auth = stack.processes["auth"].process
    assert auth is not None
    os.kill(auth.pid, signal.SIGSTOP)
    try:
        # Silence limit (3 s) plus the staleness bound, with room to spare, yet
        # well under keepalive's 15 s, which is all that noticed it before.
        eventually(lambda: outcome(tenants_call(stack, tenant.owner_token)) == "UNAVAILABLE", timeout=10)
        eventually(lambda: outcome(audit_call(stack, tenant.owner_token)) == "UNAVAILABLE", timeout=2)
    finally:
        os.kill(auth.pid, signal.SIGCONT)
    eventually(lambda: outcome(tenants_call(stack, tenant.owner_token)) == "OK", timeout=10)
    eventually(lambda: outcome(audit_call(stack, tenant.owner_token)) == "OK", timeout=10)
