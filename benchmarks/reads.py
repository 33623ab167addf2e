"""Authenticated reads: Tenantry against the FastAPI monolith a team would pick instead.

On one throwaway PostgreSQL: Tenantry (three services and the gateway) and the
peer (benchmarks/peer: FastAPI + fastapi-users, JWT, SQLAlchemy + asyncpg,
bcrypt 12, uvicorn with 2 workers). wrk drives `GET /api/v1/tenants/me` through
the gateway and the peer's `GET /me` in turn, at c=16 and c=64, ROUNDS times
each (medians reported); GetMyTenant and IntrospectToken are driven directly,
with a grpc.aio echo server for the ceiling, by two clients in turn: the
multi-process Python gRPC client and, when installed, h2load (benchmarks.h2load).
Prints a table (figure, Tenantry, peer or ceiling, ratio), then CPU per read
per process, PostgreSQL transactions per read, cold start and idle RSS.

Run: `make bench` or `python -m benchmarks.reads` (BENCH_SECONDS, BENCH_ROUNDS
shorten it). Loopback only; stops by itself.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import asyncpg
from tenantry.auth.v1 import auth_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from benchmarks import grpc_load, h2load, peer_process, wrk
from benchmarks.echo_server import ECHO_METHOD
from benchmarks.harness import Running, milliseconds, tenantry
from benchmarks.processes import cpu_seconds, rss_megabytes
from devtools.stack import free_port
from tests.stack import INTERNAL, bearer

GET_MY_TENANT = "/tenantry.tenants.v1.TenantService/GetMyTenant"
INTROSPECT = "/tenantry.auth.v1.AuthInternalService/IntrospectToken"


@dataclass
class Row:
    figure: str
    ours: str
    theirs: str
    ratio: str


@dataclass(frozen=True)
class Settings:
    seconds: float = float(os.environ.get("BENCH_SECONDS", "10"))
    rounds: int = int(os.environ.get("BENCH_ROUNDS", "3"))
    grpc_processes: int = 2


# Processes per service (and echo servers) for the second set of gRPC figures: one per core here.
WORKERS = 2


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def rps(value: float) -> str:
    return f"{value:,.0f} rps"


@dataclass(frozen=True)
class Server:
    address: str
    pid: int


@contextmanager
def echo_server(processes: int = 1) -> Iterator[Server]:
    """processes > 1: that many on one port (grpc.aio's default SO_REUSEPORT), the pid of a shell over them."""
    port = free_port()
    command = shlex.join([sys.executable, "-m", "benchmarks.echo_server", str(port)])
    # exec: one process is the echo server itself; several share the shell's process family.
    script = f"exec {command}" if processes == 1 else " & ".join([command] * processes) + " & wait"
    process = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while not _accepts(address):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the echo server did not start")
            time.sleep(0.05)
        time.sleep(1.0 if processes > 1 else 0)  # every process bound, not just the first
        yield Server(address, process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


@contextmanager
def with_workers(running: Running, names: tuple[str, ...], workers: int) -> Iterator[dict[str, Server]]:
    """Replicas of the named services beside the stack's, each with that many workers, all listening."""
    replicas = {}
    try:
        for name in names:
            replicas[name] = running.stack.replica(name, running.stack.log_dir / f"{name}-workers.log", workers=workers)
        yield {
            name: Server(replica.address, replica.process.pid)
            for name, replica in replicas.items()
            if replica.process is not None
        }
    finally:
        for replica in replicas.values():
            replica.stop()


def _accepts(address: str) -> bool:
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.2):
            return True
    except OSError:
        return False


async def _transactions(admin_url: str, databases: str) -> int:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        value = await connection.fetchval(
            "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database WHERE datname LIKE $1", databases
        )
        return int(value or 0)
    finally:
        await connection.close()


def transactions(admin_url: str, *, databases: str = "tenantry_bench_%") -> int:
    """Transactions so far in the benchmark's databases (LIKE pattern)."""
    time.sleep(1.1)  # backends flush their statistics at most once a second
    return asyncio.run(_transactions(admin_url, databases))


def wrk_measured(
    url: str, token: str, connections: int, seconds: float, pids: dict[str, int]
) -> tuple[wrk.HttpResult, dict[str, float]]:
    """One wrk run, with the CPU seconds each process spent during it."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = wrk.run(url, token=token, connections=connections, seconds=seconds)
    return result, {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}


def http_reads(running: Running, peer: peer_process.Peer | None, settings: Settings) -> list[Row]:
    ours_url = f"{running.gateway}/api/v1/tenants/me"
    tenant = running.stack.create_tenant("bench")
    token = tenant.owner_token
    rows: list[Row] = []
    pids = {name: process.process.pid for name, process in running.stack.processes.items() if process.process}
    pids["gateway"] = running.gateway_pid
    for connections in (16, 64):
        ours: list[wrk.HttpResult] = []
        theirs: list[wrk.HttpResult] = []
        cpu: dict[str, float] = {}
        peer_cpu = 0.0
        before_transactions = transactions(running.admin_url) if connections == 64 else 0
        for _ in range(settings.rounds):
            result, used = wrk_measured(ours_url, token, connections, settings.seconds, pids)
            ours.append(result)
            cpu = {name: cpu.get(name, 0.0) + seconds for name, seconds in used.items()}
            if peer is not None:
                peer_result, peer_used = wrk_measured(
                    f"{peer.url}/me", peer.token, connections, settings.seconds, {"peer": peer.pid}
                )
                theirs.append(peer_result)
                peer_cpu += peer_used["peer"]
        our_rate = statistics.median(r.rate for r in ours)
        our_p99 = statistics.median(r.p99 for r in ours)
        their_rate = statistics.median(r.rate for r in theirs) if theirs else 0.0
        their_p99 = statistics.median(r.p99 for r in theirs) if theirs else 0.0
        errors = sum(r.errors for r in ours)
        broken = sum(r.socket_errors for r in ours)
        rows.append(
            Row(
                f"GET /api/v1/tenants/me via gateway vs peer GET /me, wrk c={connections}",
                f"{rps(our_rate)}, p99 {milliseconds(our_p99)}"
                + (f", {errors} non-2xx" if errors else "")
                + (f", {broken} socket errors" if broken else ""),
                f"{rps(their_rate)}, p99 {milliseconds(their_p99)}" if theirs else "(no peer venv)",
                ratio(our_rate, their_rate),
            )
        )
        if connections == 64:
            reads = sum(r.rate for r in ours) * settings.seconds
            spent = ", ".join(f"{name} {seconds / reads * 1000:.2f} ms" for name, seconds in sorted(cpu.items()))
            rows.append(Row("CPU per read (c=64), per process", spent, "", ""))
            if theirs:
                peer_reads = sum(r.rate for r in theirs) * settings.seconds
                rows[-1].theirs = f"peer {peer_cpu / peer_reads * 1000:.2f} ms"
            per_read = (transactions(running.admin_url) - before_transactions) / reads
            rows.append(Row("PostgreSQL transactions per read (c=64, all processes)", f"{per_read:.3f}", "", ""))
    return rows


def grpc_reads(running: Running, settings: Settings) -> list[Row]:
    """With one process per service, then with WORKERS workers each (and as many echo servers)."""
    servers = {
        name: Server(process.address, process.process.pid)
        for name, process in running.stack.processes.items()
        if process.process is not None
    }
    with echo_server() as echo:
        rows = grpc_rows(running, echo, servers, settings, "")
    with echo_server(WORKERS) as echo, with_workers(running, ("tenants", "auth"), WORKERS) as replicas:
        rows += grpc_rows(running, echo, replicas, settings, f", {WORKERS} workers")
    return rows


def grpc_rows(
    running: Running, echo: Server, servers: dict[str, Server], settings: Settings, variant: str
) -> list[Row]:
    """GetMyTenant and IntrospectToken against the echo ceiling, with each client:
    the Python one, and h2load (in C, so the server has more of the two cores) when
    installed. Each figure carries the server's CPU per call (all its workers),
    steadier than rates on a shared machine."""
    tenant = running.stack.create_tenant("bench-grpc")
    clients: dict[str, Callable[[grpc_load.Load], grpc_load.Result]] = {"Python client": grpc_load.run}
    if h2load.available():
        clients["h2load"] = h2load.run
    else:
        print("h2load is not installed (apt-get install nghttp2-client): its gRPC figures skipped", file=sys.stderr)
    calls = {
        "echo": (echo, ECHO_METHOD, tenants_service_pb2.GetMyTenantRequest().SerializeToString(), ()),
        "GetMyTenant": (
            servers["tenants"],
            GET_MY_TENANT,
            tenants_service_pb2.GetMyTenantRequest().SerializeToString(),
            bearer(tenant.owner_token),
        ),
        "IntrospectToken": (
            servers["auth"],
            INTROSPECT,
            auth_service_pb2.IntrospectTokenRequest(token=tenant.owner_token).SerializeToString(),
            INTERNAL,
        ),
    }

    def measured(
        drive: Callable[[grpc_load.Load], grpc_load.Result], server: Server, load: grpc_load.Load
    ) -> tuple[str, grpc_load.Result]:
        before = cpu_seconds(server.pid)
        result = drive(load)
        cpu = (cpu_seconds(server.pid) - before) / result.calls * 1000 if result.calls else float("nan")
        failed = f", {result.failures} failed" if result.failures else ""
        return f"{rps(result.rate)}, p99 {milliseconds(result.p99)}, server CPU {cpu:.2f} ms/call{failed}", result

    rows = []
    for client, drive in clients.items():
        results = {
            name: measured(
                drive,
                server,
                grpc_load.Load(
                    server.address,
                    method,
                    request,
                    metadata,
                    processes=settings.grpc_processes,
                    seconds=settings.seconds,
                ),
            )
            for name, (server, method, request, metadata) in calls.items()
        }
        ceiling, ceiling_result = results.pop("echo")
        rows += [
            Row(
                f"gRPC {name} direct, {client}, c=64{variant}",
                figure,
                f"echo ceiling {ceiling}",
                ratio(result.rate, ceiling_result.rate),
            )
            for name, (figure, result) in results.items()
        ]
    return rows


def footprint(running: Running) -> list[Row]:
    pids = {name: process.process.pid for name, process in running.stack.processes.items() if process.process}
    pids["gateway"] = running.gateway_pid
    rss = ", ".join(f"{name} {rss_megabytes(pid):.0f} MB" for name, pid in sorted(pids.items()))
    return [
        Row("Cold start, all serving (three services and the gateway)", f"{running.cold_start:.1f} s", "", ""),
        Row("Idle RSS per process", rss, "", ""),
    ]


def print_table(rows: list[Row]) -> None:
    print("| Figure | Tenantry | Peer or ceiling | Ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.figure} | {row.ours} | {row.theirs} | {row.ratio} |")


def run(settings: Settings) -> list[Row]:
    with tenantry(GATEWAY_RATE_LIMIT_PER_MINUTE="100000") as running:
        rows = footprint(running)
        rows += grpc_reads(running, settings)
        if not wrk.available():
            print("wrk is not installed (apt-get install wrk): HTTP figures skipped", file=sys.stderr)
            return rows
        if peer_process.available():
            with peer_process.peer(running.admin_url, running.stack.log_dir) as peer:
                rows = http_reads(running, peer, settings) + rows
        else:
            print("no benchmarks/.peer-venv (make bench makes it): peer figures skipped", file=sys.stderr)
            rows = http_reads(running, None, settings) + rows
    return rows


def main() -> None:
    settings = Settings()
    started = time.perf_counter()
    rows = run(settings)
    print(f"\nAuthenticated reads, {settings.rounds} round(s) of {settings.seconds:.0f} s each, medians:")
    print_table(rows)
    print(f"(benchmark took {time.perf_counter() - started:.0f} s; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
