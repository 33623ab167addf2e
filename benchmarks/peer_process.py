"""Runs the peer monolith (benchmarks/peer) in its own venv, on the benchmark's PostgreSQL."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from devtools.postgres import create_database
from devtools.stack import free_port
from kit.settings import asyncpg_url

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / "benchmarks" / ".peer-venv" / "bin" / "python"
PEER_PASSWORD = "peer-benchmark-password-1"


@dataclass
class Peer:
    url: str
    token: str
    pid: int


def available() -> bool:
    return PEER_PYTHON.exists()


@contextmanager
def peer(admin_url: str, log_dir: Path) -> Iterator[Peer]:
    database = create_database(admin_url, f"peer_bench_{uuid.uuid4().hex[:8]}")
    env = {"PEER_DATABASE_URL": asyncpg_url(database), "PYTHONPATH": str(ROOT)}
    subprocess.run([PEER_PYTHON, "-m", "benchmarks.peer.app"], cwd=ROOT, env=env, check=True, timeout=60)
    port = free_port()
    with open(log_dir / "peer.log", "ab") as log:
        process = subprocess.Popen(
            [PEER_PYTHON, "-m", "uvicorn", "benchmarks.peer.app:app", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_serving(url, process)
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        requests.post(f"{url}/auth/register", json={"email": email, "password": PEER_PASSWORD}, timeout=30)
        login = requests.post(f"{url}/auth/jwt/login", data={"username": email, "password": PEER_PASSWORD}, timeout=30)
        login.raise_for_status()
        yield Peer(url, login.json()["access_token"], process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the peer exited with code {process.returncode}; see peer.log")
        try:
            requests.get(f"{url}/docs", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise TimeoutError("the peer did not start serving")
