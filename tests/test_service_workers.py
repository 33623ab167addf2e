"""<SERVICE>_WORKERS: processes sharing a service's port, each a whole replica.

New connections reach every worker; a logout and a tenant's change reach every
worker within the bounds a replica keeps; a worker that dies is started again;
all stop with the first, and a worker whose first process died stops by itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from tenantry.audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2, tenants_service_pb2_grpc

from benchmarks.processes import family, gone
from devtools.stack import ROOT, ServiceProcess, python_path
from tests.stack import INTERNAL, Stack, bearer, eventually, listening_workers, own_stack

WORKERS = 2
# New connections, each handed to a worker by the kernel: all of them to one worker has odds of 2**-23.
CONNECTIONS = 24
# What a replica promises: a logout reaches it within a second (kit.revocations), a tenant's change too
# (services/tenants/tenant_cache.py); the margin is for a loaded machine.
REPLICA_BOUND_SECONDS = 1.5

Call = Callable[[grpc.Channel, tuple[tuple[str, str], ...]], object]


@pytest.fixture(scope="module")
def workers_stack(fresh_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    env = {"SERVICE_WORKERS": str(WORKERS), "LOG_FORMAT": "json"}
    with own_stack(fresh_database(), tmp_path_factory.mktemp("workers"), env) as running:
        for name in running.processes:
            eventually(
                lambda n=name: listening_workers(running.log_dir / f"{n}.log") == set(range(WORKERS)), timeout=30
            )
        yield running


def log_entries(log: Path) -> list[dict[str, object]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def new_channel(address: str) -> grpc.Channel:
    # A pool of its own: gRPC would otherwise share one connection among channels to the same address.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def on_new_connections(address: str, call: Call) -> dict[str, object]:
    """Makes the call once on each of CONNECTIONS new connections; what each answered (or its error code)."""
    answers: dict[str, object] = {}
    for _ in range(CONNECTIONS):
        request_id = str(uuid.uuid4())
        with new_channel(address) as channel:
            try:
                answers[request_id] = call(channel, (("x-request-id", request_id),))
            except grpc.RpcError as error:
                answers[request_id] = error.code()  # type: ignore[attr-defined]
    return answers


def workers_that_answered(log: Path, request_ids: set[str]) -> set[object]:
    def logged() -> dict[object, object]:
        found = {entry.get("request_id"): entry.get("worker") for entry in log_entries(log)}
        return found if request_ids <= found.keys() else {}

    found = eventually(logged, timeout=5)
    return {found[request_id] for request_id in request_ids}


def get_my_tenant(token: str) -> Call:
    def call(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...]) -> object:
        stub = tenants_service_pb2_grpc.TenantServiceStub(channel)
        return stub.GetMyTenant(
            tenants_service_pb2.GetMyTenantRequest(), metadata=(*bearer(token), *metadata), timeout=5
        )

    return call


def test_new_connections_are_served_by_every_worker_of_every_service(workers_stack: Stack) -> None:
    stack = workers_stack
    tenant = stack.create_tenant("workers")
    calls: dict[str, Call] = {
        "tenants": get_my_tenant(tenant.owner_token),
        "auth": lambda channel, metadata: auth_service_pb2_grpc.AuthInternalServiceStub(channel).IntrospectToken(
            auth_service_pb2.IntrospectTokenRequest(token=tenant.owner_token),
            metadata=(*INTERNAL, *metadata),
            timeout=5,
        ),
        "audit": lambda channel, metadata: audit_service_pb2_grpc.AuditServiceStub(channel).ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(), metadata=(*bearer(tenant.owner_token), *metadata), timeout=5
        ),
    }
    for name, call in calls.items():
        answers = on_new_connections(stack.processes[name].address, call)
        assert not [answer for answer in answers.values() if isinstance(answer, grpc.StatusCode)], name
        assert workers_that_answered(stack.log_dir / f"{name}.log", set(answers)) == set(range(WORKERS)), name


def test_a_logout_reaches_every_worker_within_a_replicas_bound(workers_stack: Stack) -> None:
    stack = workers_stack
    tenant = stack.create_tenant("workers-logout")
    stack.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=bearer(tenant.owner_token), timeout=10)
    eventually(
        lambda: stack.token_refused_by_tenants(tenant.owner_token),
        timeout=REPLICA_BOUND_SECONDS,
    )
    answers = on_new_connections(stack.processes["tenants"].address, get_my_tenant(tenant.owner_token))
    assert set(answers.values()) == {grpc.StatusCode.UNAUTHENTICATED}
    assert workers_that_answered(stack.log_dir / "tenants.log", set(answers)) == set(range(WORKERS))


def test_a_tenants_change_reaches_every_worker_within_a_replicas_bound(workers_stack: Stack) -> None:
    stack = workers_stack
    tenant = stack.create_tenant("workers-change")
    address = stack.processes["tenants"].address
    before = on_new_connections(address, get_my_tenant(tenant.owner_token))  # every worker caches it
    assert workers_that_answered(stack.log_dir / "tenants.log", set(before)) == set(range(WORKERS))
    stack.tenants.UpdateMyTenant(
        tenants_service_pb2.UpdateMyTenantRequest(
            tenant=tenants_pb2.Tenant(name="Renamed Everywhere"), update_mask=field_mask_pb2.FieldMask(paths=["name"])
        ),
        metadata=bearer(tenant.owner_token),
        timeout=10,
    )

    def renamed_everywhere() -> bool:
        answers = on_new_connections(address, get_my_tenant(tenant.owner_token))
        return {getattr(answer, "name", answer) for answer in answers.values()} == {"Renamed Everywhere"}

    eventually(renamed_everywhere, timeout=REPLICA_BOUND_SECONDS)


def start_tenants(stack: Stack, log: Path) -> ServiceProcess:
    """A tenants service of the test's own with WORKERS workers, beside the stack's."""
    return stack.replica("tenants", log, workers=WORKERS)


def workers_of(process: ServiceProcess) -> list[int]:
    assert process.process is not None
    return [pid for pid in family(process.process.pid) if pid != process.process.pid]


def test_a_worker_that_dies_is_started_again_and_all_stop_with_the_first(workers_stack: Stack, tmp_path: Path) -> None:
    log = tmp_path / "tenants.log"
    process = start_tenants(workers_stack, log)
    everyone: list[int] = []
    try:
        (worker,) = workers_of(process)
        os.kill(worker, signal.SIGKILL)
        eventually(lambda: gone(worker), timeout=10)
        eventually(
            lambda: [entry.get("worker") for entry in log_entries(log) if entry["message"] == "listening"].count(1) == 2
        )
        restarts = [entry for entry in log_entries(log) if entry["message"] == "worker exited; starting it again"]
        assert [(entry["worker"], entry["exit_code"]) for entry in restarts] == [(1, -signal.SIGKILL)]
        assert process.process is not None
        everyone = family(process.process.pid)
        assert len(everyone) == WORKERS and worker not in everyone
        tenant = workers_stack.create_tenant("workers-restart")
        answers = on_new_connections(process.address, get_my_tenant(tenant.owner_token))
        assert workers_that_answered(log, set(answers)) == set(range(WORKERS))
    finally:
        process.stop()
    eventually(lambda: all(gone(pid) for pid in everyone), timeout=15)


def test_a_worker_whose_first_process_died_stops_by_itself(workers_stack: Stack, tmp_path: Path) -> None:
    process = start_tenants(workers_stack, tmp_path / "tenants.log")
    (worker,) = workers_of(process)
    assert process.process is not None
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(10)
    eventually(lambda: gone(worker), timeout=15)


def tenants_refusing_to_start(stack: Stack, **env: str) -> str:
    """Starts tenants with the stack's settings and env added; it must exit at once. What it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "services.tenants"],
        cwd=ROOT,
        env={**os.environ, **stack.processes["tenants"].env, "PYTHONPATH": python_path(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    return result.stderr


def test_workers_need_a_port_they_can_share(workers_stack: Stack) -> None:
    printed = tenants_refusing_to_start(workers_stack, TENANTS_LISTEN_ADDR="127.0.0.1:0")
    assert "2 workers need a fixed port to share, not 127.0.0.1:0" in printed


def test_a_worker_count_out_of_range_is_named(workers_stack: Stack) -> None:
    printed = tenants_refusing_to_start(workers_stack, TENANTS_WORKERS="0")
    assert "TENANTS_WORKERS" in printed
    assert "greater than or equal to 1" in printed


def test_a_worker_place_set_by_hand_is_refused_by_name(workers_stack: Stack) -> None:
    printed = tenants_refusing_to_start(workers_stack, TENANTRY_WORKER="x")
    assert "TENANTRY_WORKER must be FIRST_PID:INDEX" in printed
