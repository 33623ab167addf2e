"""The read benchmarks, run for a moment against the suite's stack so that they cannot rot.

Figures are not checked (the suite never times anything): only that each
driver runs, reaches its target and parses what it gets back.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable

import grpc
import pytest
from tenantry.auth.v1 import auth_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from benchmarks import audit_ingest, grpc_load, h2load, login_burst, logins, refresh, wrk
from benchmarks.echo_server import ECHO_METHOD
from benchmarks.processes import cpu_seconds, rss_megabytes
from benchmarks.reads import GET_MY_TENANT, INTROSPECT, echo_server, print_table, ratio, transactions
from tests.gateway.conftest import start_gateway, tenantry_gateway_env
from tests.stack import INTERNAL, OWNER_PASSWORD, Stack, bearer


def briefly(target: str, method: str, request: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> grpc_load.Result:
    return grpc_load.run(grpc_load.Load(target, method, request, metadata, processes=1, concurrency=2, seconds=0.5))


def test_the_grpc_load_client_drives_the_echo_ceiling() -> None:
    with echo_server() as echo:
        result = briefly(echo.address, ECHO_METHOD, b"ping")
    assert result.calls > 0
    assert result.failures == 0


def drive_get_my_tenant_and_introspection(
    stack: Stack, name: str, drive: Callable[..., grpc_load.Result]
) -> list[grpc_load.Result]:
    tenant = stack.create_tenant(name)
    mine = drive(
        stack.processes["tenants"].address,
        GET_MY_TENANT,
        tenants_service_pb2.GetMyTenantRequest().SerializeToString(),
        bearer(tenant.owner_token),
    )
    introspection = drive(
        stack.processes["auth"].address,
        INTROSPECT,
        auth_service_pb2.IntrospectTokenRequest(token=tenant.owner_token).SerializeToString(),
        INTERNAL,
    )
    return [mine, introspection]


def test_the_login_benchmark_logs_in_and_measures_the_bcrypt_bound(stack: Stack) -> None:
    tenant = stack.create_tenant("smoke-logins")
    rate = logins.login_rate(stack, tenant.owner_email, OWNER_PASSWORD, callers=2, seconds=0.5)
    assert rate.done > 0 and rate.failed == 0
    assert logins.bcrypt_bound(4, 2, 0.2).per_second > 0


def test_the_refresh_benchmark_rotates_chains_from_an_agreed_instant(stack: Stack) -> None:
    tenant = stack.create_tenant("smoke-refresh")
    tokens = [stack.login(tenant.owner_email, OWNER_PASSWORD).refresh_token for _ in range(2)]
    start_at = time.time() + 0.3
    done, latencies, failures = refresh.client_process(stack.processes["auth"].address, tokens, 0.5, start_at)
    assert done > 0 and failures == 0 and len(latencies) == done
    # Nothing counted before the agreed instant: the run took at least the wait and the window.
    assert time.time() >= start_at + 0.5


def test_the_audit_ingest_benchmark_sends_its_batches(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_ingest, "BATCH", 5)
    monkeypatch.setattr(audit_ingest, "BATCHES_PER_SENDER", 2)
    result = asyncio.run(audit_ingest.ingest(stack.processes["audit"].address))
    assert len(result.halves) == 2 and all(seconds > 0 for seconds in result.halves)


def test_the_grpc_load_client_drives_get_my_tenant_and_introspection(stack: Stack) -> None:
    for result in drive_get_my_tenant_and_introspection(stack, "smoke", briefly):
        assert result.calls > 0 and result.failures == 0


def test_a_refused_call_counts_as_a_failure(stack: Stack) -> None:
    result = briefly(
        stack.processes["tenants"].address,
        GET_MY_TENANT,
        tenants_service_pb2.GetMyTenantRequest().SerializeToString(),
        bearer("not-a-token"),
    )
    assert result.calls == 0
    assert result.failures > 0


def briefly_with_h2load(
    target: str, method: str, request: bytes, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc_load.Result:
    return h2load.run(grpc_load.Load(target, method, request, metadata, processes=1, concurrency=2, seconds=1))


needs_h2load = pytest.mark.skipif(
    not h2load.available(), reason="h2load is not installed (make bench installs nghttp2-client)"
)


@needs_h2load
def test_h2load_drives_the_echo_ceiling_and_get_my_tenant_and_introspection(stack: Stack) -> None:
    with echo_server() as server:
        echo = briefly_with_h2load(server.address, ECHO_METHOD, b"ping")
    for result in [echo, *drive_get_my_tenant_and_introspection(stack, "smoke-h2load", briefly_with_h2load)]:
        assert result.calls > 0 and result.failures == 0
        assert 0 < result.p50 <= result.p99


@needs_h2load
def test_h2load_is_not_run_on_a_call_grpc_refuses(stack: Stack) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        briefly_with_h2load(
            stack.processes["tenants"].address,
            GET_MY_TENANT,
            tenants_service_pb2.GetMyTenantRequest().SerializeToString(),
            bearer("not-a-token"),
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_h2load_answers_count_only_when_they_carry_the_expected_message() -> None:
    summary = (
        "finished in 1.00s, 100.00 req/s, 10KB/s\n"
        "requests: {done} total, {done} started, {done} done, {done} succeeded, 0 failed, 0 errored, 0 timeout\n"
        "status codes: {done} 2xx, 0 3xx, 0 4xx, 0 5xx\n"
        "traffic: 5KB (5000) total, 1KB (1000) headers (space savings 90.00%), 1KB ({data}) data\n"
    )
    # 100 calls, answers of 9 bytes (a 4-byte message and its 5-byte prefix)
    assert h2load.answered(summary.format(done=100, data=900), 9, 2) == (100, 0)
    # Three answers were trailers only (a gRPC error): 200s all the same.
    assert h2load.answered(summary.format(done=100, data=97 * 9), 9, 2) == (97, 3)
    # Answers of another size are not the call measured.
    assert h2load.answered(summary.format(done=100, data=100 * 8), 9, 2) == (0, 100)
    assert h2load.grpc_message(b"ping") == b"\x00\x00\x00\x00\x04ping"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench installs it)")
def test_wrk_drives_the_gateway_and_its_output_is_read(stack: Stack) -> None:
    tenant = stack.create_tenant("smoke-http")
    gateway = start_gateway("gateway-smoke", tenantry_gateway_env(stack), stack.log_dir)
    try:
        url = f"http://{gateway.address}/api/v1/tenants/me"
        result = wrk.run(url, token=tenant.owner_token, connections=2, seconds=1)
        refused = wrk.run(url, token="not-a-token", connections=2, seconds=1)
    finally:
        gateway.stop()
    assert result.rate > 0 and result.errors == 0 and result.socket_errors == 0
    assert 0 < result.p50 <= result.p99
    assert refused.errors > 0


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load is missing (make bench installs nghttp2-client)")
def test_h2load_bursts_logins_and_its_log_is_read(stack: Stack, capsys) -> None:  # type: ignore[no-untyped-def]
    tenant = stack.create_tenant("smoke-burst")
    gateway = start_gateway("gateway-burst", tenantry_gateway_env(stack), stack.log_dir)
    try:
        url = f"http://{gateway.address}/api/v1/auth/login"
        login = {"email": tenant.owner_email, "password": OWNER_PASSWORD}
        answers = h2load.http_burst(url, json.dumps(login).encode(), clients=2)
        wrong = {**login, "password": "not the password"}
        refused = h2load.http_burst(url, json.dumps(wrong).encode(), clients=1)
    finally:
        gateway.stop()
    assert len(answers) == 2 and {answer.status for answer in answers} <= {200, 429}
    assert all(0 < answer.seconds < 30 for answer in answers)
    assert [answer.status for answer in refused] == [401]
    login_burst.report(answers + refused, expected=4)
    printed = capsys.readouterr().out
    assert "HTTP 401:    1" in printed and "other statuses: {401: 1}; 1 without an answer" in printed


def test_process_figures_and_the_table_are_produced(stack: Stack, postgres_admin_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    process = stack.processes["tenants"].process
    assert process is not None
    assert cpu_seconds(process.pid) > 0
    assert 10 < rss_megabytes(process.pid) < 2000
    assert transactions(postgres_admin_url, databases="tenantry_test_%") > 0
    assert ratio(3, 2) == "1.50x" and ratio(1, 0) == "-"
    from benchmarks.reads import Row

    print_table([Row("figure", "ours", "theirs", "1.00x")])
    assert "| figure | ours | theirs | 1.00x |" in capsys.readouterr().out
