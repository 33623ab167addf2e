"""GATEWAY_WORKERS: processes sharing the port, stopped with the first; and a full
in-flight bound refuses with 429 before a request's body is even read."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from benchmarks.processes import family, gone
from devtools.stack import ServiceProcess
from tests.gateway.conftest import start_gateway

LOGIN = "/api/v1/auth/login"


@contextmanager
def silent_upstream() -> Iterator[str]:
    """A port that takes connections and never answers: a call to it waits out its deadline."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def upstreams(address: str) -> dict[str, str]:
    return {
        "GATEWAY_UPSTREAMS": f"tenantry.auth.v1={address};tenantry.tenants.v1={address};tenantry.audit.v1={address}"
    }


def eventually(check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def listening_workers(log: Path) -> set[int]:
    lines = log.read_text().splitlines() if log.exists() else []
    return {
        int(line.split('"worker": ')[1].split(",")[0]) for line in lines if '"listening"' in line and '"worker"' in line
    }


def start_workers(tmp_path: Path, name: str, address: str) -> ServiceProcess:
    env = {**upstreams(address), "GATEWAY_WORKERS": "2", "LOG_FORMAT": "json"}
    gateway = start_gateway(name, env, tmp_path)
    eventually(lambda: listening_workers(tmp_path / f"{name}.log") == {0, 1})
    return gateway


def test_two_workers_serve_one_port_and_stop_with_the_first(tmp_path: Path) -> None:
    with silent_upstream() as address:
        gateway = start_workers(tmp_path, "gateway-workers", address)
        assert gateway.process is not None
        processes = family(gateway.process.pid)
        assert len(processes) == 2
        for _ in range(8):  # new connections each time: whichever worker takes one answers
            with requests.Session() as client:
                assert client.get(f"http://{gateway.address}/openapi.json", timeout=10).status_code == 200
        gateway.stop()
        eventually(lambda: all(gone(pid) for pid in processes))


def test_a_worker_whose_first_process_died_stops_by_itself(tmp_path: Path) -> None:
    with silent_upstream() as address:
        gateway = start_workers(tmp_path, "gateway-orphan", address)
        assert gateway.process is not None
        others = [pid for pid in family(gateway.process.pid) if pid != gateway.process.pid]
        assert len(others) == 1
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait(10)
        eventually(lambda: gone(others[0]))


def hold(url: str, body: bytes) -> None:
    """A login that waits on the silent upstream until the gateway stops."""
    with contextlib.suppress(requests.RequestException):
        requests.post(url, data=body, timeout=90)


def refused(url: str, body: bytes) -> bool:
    # A probe that got in first holds the slot itself (until the upstream deadline): refused next time.
    try:
        return requests.post(url, data=body, timeout=2).status_code == 429
    except requests.RequestException:
        return False


def test_a_full_in_flight_bound_answers_429_without_reading_the_body(tmp_path: Path) -> None:
    body = b'{"email": "someone@example.test", "password": "a-password-1"}'
    with silent_upstream() as address:
        env = {**upstreams(address), "GATEWAY_MAX_IN_FLIGHT": "1", "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "60"}
        gateway = start_gateway("gateway-in-flight", env, tmp_path)
        url = f"http://{gateway.address}{LOGIN}"
        # One login waits on the silent upstream, holding the only slot.
        holder = threading.Thread(target=hold, args=(url, body), daemon=True)
        holder.start()
        try:
            eventually(lambda: refused(url, body))
            host, _, port = gateway.address.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=10) as connection:
                # Headers announcing a body, and only its first byte: reading it would wait forever.
                connection.sendall(
                    f"POST {LOGIN} HTTP/1.1\r\nHost: {gateway.address}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body[:1]
                )
                answer = connection.recv(4096)
            assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
            assert b"Retry-After: 1" in answer
        finally:
            gateway.stop()
