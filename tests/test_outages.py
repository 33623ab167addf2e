"""A PostgreSQL outage, for real: a cluster of this test's own is stopped and started again.

While it is down every service answers UNAVAILABLE (the gateway 503 with
Retry-After) and logs the outage once; once it is back the services serve
again on their own, within a fraction of a second.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import grpc
import pytest
import requests
from tenantry.audit.v1 import audit_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from devtools.postgres import create_database, start_embedded
from tests.gateway.conftest import start_gateway, tenantry_gateway_env
from tests.stack import OPERATOR_EMAIL, OPERATOR_PASSWORD, Stack, bearer, eventually, own_stack


@dataclass
class StoppablePostgres:
    """An embedded cluster that can be stopped and started with pg_ctl, on the same socket."""

    server: Any
    admin_url: str

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        socket_dir = parse_qs(urlparse(self.admin_url).query)["host"][0]
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.log), "start")


@pytest.fixture(scope="module")
def postgres() -> Iterator[StoppablePostgres]:
    with tempfile.TemporaryDirectory(prefix="tnt-out-") as folder:
        server, url = start_embedded(Path(folder) / "data")
        try:
            yield StoppablePostgres(server, url)
        finally:
            server.cleanup()


@pytest.fixture(scope="module")
def outage_stack(postgres: StoppablePostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    url = create_database(postgres.admin_url, "tenantry_outage")
    with own_stack(url, tmp_path_factory.mktemp("outage")) as running:
        yield running


def status_of(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def log_lines(stack: Stack, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (stack.log_dir / f"{name}.log").read_text().splitlines()]


def test_a_database_outage_answers_unavailable_logs_once_and_recovers_by_itself(
    outage_stack: Stack, postgres: StoppablePostgres
) -> None:
    stack = outage_stack
    gateway = start_gateway("gateway-outage", tenantry_gateway_env(stack), stack.log_dir)
    try:
        tenant = stack.create_tenant("outage")
        my_tenant = lambda: stack.tenants.GetMyTenant(  # noqa: E731
            tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(tenant.owner_token), timeout=10
        )
        audit_events = lambda: stack.audit.ListAuditEvents(  # noqa: E731
            audit_service_pb2.ListAuditEventsRequest(page_size=1), metadata=bearer(tenant.owner_token), timeout=10
        )
        assert status_of(my_tenant) == grpc.StatusCode.OK and status_of(audit_events) == grpc.StatusCode.OK

        postgres.stop()
        try:
            for _ in range(5):
                assert status_of(my_tenant) == grpc.StatusCode.UNAVAILABLE
                assert status_of(audit_events) == grpc.StatusCode.UNAVAILABLE
                assert status_of(lambda: stack.login(OPERATOR_EMAIL, OPERATOR_PASSWORD)) == grpc.StatusCode.UNAVAILABLE
            reply = requests.get(
                f"http://{gateway.address}/api/v1/tenants/me",
                headers={"Authorization": f"Bearer {tenant.owner_token}"},
                timeout=10,
            )
            assert reply.status_code == 503 and reply.headers.get("Retry-After")
            assert reply.json()["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
            login = requests.post(
                f"http://{gateway.address}/api/v1/auth/login",
                json={"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD},
                timeout=10,
            )
            assert login.status_code == 503 and login.headers.get("Retry-After")
            # Long enough for several health probes and relay attempts: still one warning each.
            time.sleep(2)
            assert status_of(my_tenant) == grpc.StatusCode.UNAVAILABLE
        finally:
            postgres.start()
        back = time.monotonic()
        eventually(lambda: status_of(my_tenant) == grpc.StatusCode.OK, timeout=10, interval=0.005)
        recovered_after = time.monotonic() - back
        eventually(lambda: status_of(audit_events) == grpc.StatusCode.OK, timeout=10)
        print(f"first success {recovered_after:.3f} s after the database was back")
    finally:
        gateway.stop()

    time.sleep(0.3)  # let the last log lines land
    for name in ("auth", "tenants", "audit"):
        lines = log_lines(stack, name)
        started = [line for line in lines if line["message"].startswith("database unreachable")]
        ended = [line for line in lines if line["message"] == "database reachable again"]
        assert len(started) == 1 and started[0]["level"] == "warning", (name, started)
        assert len(ended) == 1, (name, ended)
        errors = [line for line in lines if line["level"] == "error"]
        assert errors == [], (name, errors)
        assert not [line for line in lines if line["logger"] == "tenantry.rpc" and line.get("status") == "INTERNAL"]
