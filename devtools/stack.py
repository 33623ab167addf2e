"""Runs Tenantry's services as real processes and waits until they serve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kit.healthcheck import is_serving

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("audit", "auth", "tenants")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_taken(address: str) -> bool:
    """Something already listens on host:port (gRPC's SO_REUSEPORT would otherwise share it silently)."""
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # SO_REUSEADDR: connections of a run just stopped (TIME_WAIT) do not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]") or "0.0.0.0", int(port)))
        except OSError:
            return True
    return False


def python_path() -> str:
    return os.pathsep.join([str(ROOT), str(ROOT / "gen"), str(ROOT / "clients" / "python")])


def http_healthy(address: str, timeout: float = 1.0) -> bool:
    """The gateway answers /health with 200 (every upstream serving)."""
    try:
        with urllib.request.urlopen(f"http://{address}/health", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except (OSError, ValueError):
        return False


def http_responds(address: str, timeout: float = 1.0) -> bool:
    """The gateway answers HTTP at all (its upstreams may be down)."""
    try:
        with urllib.request.urlopen(f"http://{address}/openapi.json", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


@dataclass
class ServiceProcess:
    name: str
    address: str
    env: Mapping[str, str]
    log_path: Path | None = None
    module: str = ""
    probe: Callable[[str, float], bool] = is_serving
    # A process group of its own: a terminal's Ctrl-C then reaches only the supervisor, which stops it in order.
    own_process_group: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        env = {**os.environ, **self.env, "PYTHONPATH": python_path(), "PYTHONUNBUFFERED": "1"}
        output = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module or f"services.{self.name}"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            process_group=0 if self.own_process_group else None,
        )
        if output:
            output.close()

    def wait_serving(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}")
            if self.probe(self.address, 0.5):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not start serving on {self.address} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        self.terminate()
        self.wait_stopped(timeout)

    def terminate(self) -> None:
        """Asks the process to stop (SIGTERM: it drains its calls first)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def service_env(
    database_url: str,
    internal_api_token: str,
    addresses: Mapping[str, str],
    *,
    audit_chain_key: str,
    audit_data_dir: Path,
    gateway_token: str = "",
    api_key_hash_key: str = "",
) -> dict[str, str]:
    """The environment every service of one stack shares."""
    return {
        "DATABASE_URL": database_url,
        "INTERNAL_API_TOKEN": internal_api_token,
        "AUDIT_CHAIN_KEY": audit_chain_key,
        "AUDIT_DATA_DIR": str(audit_data_dir),
        "AUTH_LISTEN_ADDR": addresses["auth"],
        "TENANTS_LISTEN_ADDR": addresses["tenants"],
        "AUDIT_LISTEN_ADDR": addresses["audit"],
        "AUTH_SERVICE_ADDR": addresses["auth"],
        "AUDIT_SERVICE_ADDR": addresses["audit"],
        # Proves the gateway, which passes the client's address and user agent on.
        "GATEWAY_TOKEN": gateway_token,
        # Keys the hash API keys are stored as (auth only); empty: no API keys.
        "API_KEY_HASH_KEY": api_key_hash_key,
    }


def gateway_env(addresses: Mapping[str, str], gateway_address: str, *, gateway_token: str = "") -> dict[str, str]:
    host, _, port = gateway_address.rpartition(":")
    return {
        "GATEWAY_TOKEN": gateway_token,
        "GATEWAY_HOST": host,
        "GATEWAY_PORT": port,
        "GATEWAY_UPSTREAMS": ";".join(f"tenantry.{name}.v1={addresses[name]}" for name in ("auth", "tenants", "audit")),
    }
