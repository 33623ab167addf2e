"""A throwaway Tenantry for a benchmark: its own PostgreSQL, migrated database,
the three services as real processes and the gateway, on loopback."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.postgres import create_database
from kit import migrations
from tests.gateway.conftest import start_gateway, tenantry_gateway_env
from tests.postgres import postgres_server
from tests.stack import Stack


@dataclass
class Running:
    stack: Stack
    gateway: str
    admin_url: str = ""
    # Seconds from starting the services to all of them (and the gateway) serving.
    cold_start: float = 0.0
    gateway_pid: int = 0


@contextmanager
def tenantry(gateway_env: dict[str, str] | None = None, **service_env: str) -> Iterator[Running]:
    """service_env goes to the three services, gateway_env to the gateway."""
    with postgres_server() as admin_url, tempfile.TemporaryDirectory(prefix="tnt-bench-") as folder:
        url = create_database(admin_url, f"tenantry_bench_{uuid.uuid4().hex[:8]}")
        for service in ("audit", "auth", "tenants"):
            migrations.upgrade(service, url)
        stack = Stack(url, Path(folder), extra_env=service_env)
        started = time.perf_counter()
        stack.start()
        gateway = None
        try:
            gateway = start_gateway("gateway", {**tenantry_gateway_env(stack), **(gateway_env or {})}, Path(folder))
            assert gateway.process is not None
            yield Running(
                stack,
                f"http://{gateway.address}",
                admin_url=admin_url,
                cold_start=time.perf_counter() - started,
                gateway_pid=gateway.process.pid,
            )
        finally:
            if gateway is not None:
                gateway.stop()
            stack.stop()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(fraction * 100) - 1))]


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"
