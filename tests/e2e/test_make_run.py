"""`make run`, `make seed` and `make reset-operator-password` as a developer meets them, as real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from devtools.stack import ROOT, free_port, python_path
from tests.stack import eventually

SERVING = "Tenantry is serving"


class Run:
    def __init__(self, env: dict[str, str], output: Path) -> None:
        self.env = env
        self.output = output
        self.gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"

    def text(self) -> str:
        return self.output.read_text() if self.output.exists() else ""


def devtool(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"devtools.{module}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def run_env(fresh_database, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """What a developer's shell would hold, on a database and ports of the test's own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PLATFORM_", "GATEWAY_"))}
    env.update(
        {
            "PYTHONPATH": python_path(),
            "DATABASE_URL": fresh_database(),
            "TENANTRY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_PORT": str(free_port()),
            "AUTH_LISTEN_ADDR": f"127.0.0.1:{free_port()}",
            "TENANTS_LISTEN_ADDR": f"127.0.0.1:{free_port()}",
            "AUDIT_LISTEN_ADDR": f"127.0.0.1:{free_port()}",
            "BCRYPT_ROUNDS": "4",
        }
    )
    return env


@contextmanager
def make_run(env: dict[str, str], output: Path) -> Iterator[Run]:
    """`make run` in a terminal's foreground process group; leaving the block presses Ctrl-C."""
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.run"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    run = Run(env, output)
    try:
        eventually(lambda: SERVING in run.text() or process.poll() is not None, timeout=90, interval=0.2)
        assert SERVING in run.text(), run.text()
        yield run
    finally:
        # A terminal's Ctrl-C goes to the whole foreground group.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode == 0, run.text()


def test_make_run_serves_on_gateway_port_and_seed_is_safe_to_repeat(run_env: dict[str, str], tmp_path: Path) -> None:
    with make_run(run_env, tmp_path / "run.log") as run:
        banner = run.text()
        assert f"gateway  {run.gateway}" in banner
        assert f"operator admin@tenantry.local, password from {tmp_path / 'data' / 'platform-admin-password'}" in banner
        root = requests.get(f"{run.gateway}/", allow_redirects=False, timeout=10)
        assert root.status_code == 302 and root.headers["Location"] == "/docs"

        for _ in range(3):
            assert requests.get(f"{run.gateway}/health", timeout=10).status_code == 200
        # Someone made `initech` by hand first, with an owner password of their own.
        operator_password = (tmp_path / "data" / "platform-admin-password").read_text()
        operator = requests.post(
            f"{run.gateway}/api/v1/auth/login",
            json={"email": "admin@tenantry.local", "password": operator_password},
            timeout=30,
        ).json()["access_token"]
        by_hand = requests.post(
            f"{run.gateway}/api/v1/tenants",
            headers={"Authorization": f"Bearer {operator}"},
            json={
                "name": "Initech by hand",
                "slug": "initech",
                "owner": {"email": "owner@initech.example", "full_name": "I", "password": "a-password-by-hand"},
            },
            timeout=30,
        )
        assert by_hand.status_code == 200, by_hand.text
        first = devtool("seed", run_env)
        second = devtool("seed", run_env)

    assert first.returncode == 0, first.stderr
    for slug in ("acme", "globex"):
        assert f"{slug:8} created         owner owner@{slug}.example / demo-owner-password" in first.stdout
        assert f"{slug:8} already exists  owner owner@{slug}.example / demo-owner-password" in second.stdout
    for output in (first.stdout, second.stdout):
        assert "initech  already exists  (its owner is not owner@initech.example / demo-owner-password" in output
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr
    stopped = run.text()
    # Health probes that pass are not logged (orchestrators send one every few seconds).
    assert not [line for line in stopped.splitlines() if '"path": "/health"' in line and '"status": 200' in line]
    # Ctrl-C stops everything quietly: no service is reported as having died.
    assert "stopped by itself" not in stopped and "Traceback" not in stopped
    assert "stopping…" in stopped


def test_make_run_names_the_port_that_is_taken(run_env: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = devtool("run", {**run_env, "GATEWAY_PORT": str(port)})

    assert result.returncode != 0
    assert f"127.0.0.1:{port} (gateway, set by GATEWAY_PORT) is taken" in result.stderr
    assert "Traceback" not in result.stderr


def test_seed_without_make_run_says_to_start_it(run_env: dict[str, str]) -> None:
    data = Path(run_env["TENANTRY_DATA_DIR"])
    data.mkdir()
    (data / "platform-admin-password").write_text("some-operator-password")

    result = devtool("seed", run_env)

    assert result.returncode != 0
    assert (
        f"nothing answers at {run_env['AUTH_LISTEN_ADDR']} (AUTH_LISTEN_ADDR): start `make run` first" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_the_banner_tells_when_the_database_keeps_another_operator_password(
    run_env: dict[str, str], tmp_path: Path
) -> None:
    with make_run(run_env, tmp_path / "first.log"):
        pass
    changed = {**run_env, "PLATFORM_ADMIN_PASSWORD": "a-changed-operator-password"}

    with make_run(changed, tmp_path / "second.log") as second:
        assert "the database keeps an older password, not the one from PLATFORM_ADMIN_PASSWORD" in second.text()
    reset = devtool("operator_password", changed)
    assert reset.returncode == 0, reset.stderr
    assert "The password of operator admin@tenantry.local" in reset.stdout
    with make_run(changed, tmp_path / "third.log") as third:
        assert "operator admin@tenantry.local, password from PLATFORM_ADMIN_PASSWORD" in third.text()
