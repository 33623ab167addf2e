"""Keepalive agreed between clients and servers: idle connections stay up, and
gRPC's C core never writes plain text into the JSON logs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenantry.tenants.v1 import tenants_service_pb2

from devtools.stack import ROOT, python_path
from kit.clients import channel_options, keepalive_settings
from tests.stack import Stack, bearer, own_stack

PING_INTERVAL_MS = 200
# gRPC's default server policy sends GOAWAY too_many_pings after about three
# seconds of such pings; idle well past that.
IDLE_SECONDS = 5


@pytest.fixture(scope="module")
def pinging_stack(fresh_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    # ERROR: so a GOAWAY the services' own channels receive would show in their logs.
    extra_env = {"GRPC_KEEPALIVE_TIME_MS": str(PING_INTERVAL_MS), "GRPC_VERBOSITY": "ERROR"}
    with own_stack(fresh_database(), tmp_path_factory.mktemp("keepalive"), extra_env) as running:
        yield running


@pytest.fixture
def pinging_options(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[tuple[str, str | int], ...]]:
    monkeypatch.setenv("GRPC_KEEPALIVE_TIME_MS", str(PING_INTERVAL_MS))
    keepalive_settings.cache_clear()
    try:
        yield channel_options()
    finally:
        keepalive_settings.cache_clear()


def test_idle_connections_with_frequent_pings_stay_up_and_serve_the_next_call(
    pinging_stack: Stack, pinging_options: tuple[tuple[str, str | int], ...]
) -> None:
    stack = pinging_stack
    tenant = stack.create_tenant("keepalive")
    assert ("grpc.keepalive_time_ms", PING_INTERVAL_MS) in pinging_options
    channels = {
        name: grpc.insecure_channel(stack.processes[name].address, options=pinging_options) for name in stack.processes
    }
    try:
        states: dict[str, list[grpc.ChannelConnectivity]] = {name: [] for name in channels}
        for name, channel in channels.items():
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            channel.subscribe(states[name].append)
        time.sleep(IDLE_SECONDS)
        for name, seen in states.items():
            # A GOAWAY would have sent the channel back to IDLE.
            assert seen and set(seen) == {grpc.ChannelConnectivity.READY}, (name, seen)
        reply = stack.tenants.GetMyTenant(
            tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(tenant.owner_token), timeout=5
        )
        assert reply.id == tenant.id
    finally:
        for channel in channels.values():
            channel.close()
    # The services' own idle channels (relays to audit, the revocation stream)
    # pinged just as often.
    for name in stack.processes:
        text = (stack.log_dir / f"{name}.log").read_text()
        assert "too_many_pings" not in text and "GOAWAY" not in text, name


def test_grpc_core_prints_nothing_outside_the_json_logs() -> None:
    """A process using the kit, whose channel is refused by a server with gRPC's
    default ping policy: C core would report that GOAWAY in plain text."""
    script = textwrap.dedent(
        f"""
        import kit.clients, logging, os, time
        from concurrent import futures
        import grpc
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        from kit.logging import configure_logging

        configure_logging("probe")
        server = grpc.server(futures.ThreadPoolExecutor(2))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{{port}}", options=kit.clients.channel_options())
        states = []
        channel.subscribe(states.append)
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        time.sleep({IDLE_SECONDS})
        logging.getLogger("probe").info("states", extra={{"states": [state.name for state in states]}})
        channel.close()
        server.stop(0)
        os._exit(0)
        """
    )
    env = {"PYTHONPATH": python_path(), "GRPC_KEEPALIVE_TIME_MS": str(PING_INTERVAL_MS), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (entry,) = [json.loads(line) for line in result.stdout.splitlines()]
    # The GOAWAY did happen (the default server policy refuses such pings)...
    assert entry["states"][-1] == "IDLE", entry
    # ...and nothing of C core's reached stderr.
    assert result.stderr == ""
