"""What the export and retention tests share: filling a trail, streaming an export, verifying it as an auditor."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from tenantry.audit.v1 import audit_export_service_pb2, audit_export_service_pb2_grpc

from devtools.stack import ROOT, python_path
from tests.audit.tampering import append, event, verify
from tests.stack import AUDIT_CHAIN_KEY, Stack, Tenant, bearer


def fill(stack: Stack, tenant_id: str, count: int, batch: int = 500) -> None:
    for start in range(0, count, batch):
        append(stack, *(event(tenant_id) for _ in range(min(batch, count - start))))


def download(gateway: str, token: str, target: Path, **params: str) -> requests.Response:
    with requests.get(
        f"{gateway}/api/v1/audit/events:export",
        headers={"Authorization": f"Bearer {token}"},
        params=params,
        stream=True,
        timeout=600,
    ) as reply:
        if reply.status_code == 200:
            with target.open("wb") as file:
                for chunk in reply.iter_content(65536):
                    file.write(chunk)
        return reply


def audit_command(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """python -m services.audit ARGS in a process of its own, with env and nothing else of ours."""
    return subprocess.run(
        [sys.executable, "-m", "services.audit", *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": python_path(), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def verify_export(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The auditor's command, run as they would: only the chain key in the environment."""
    return audit_command(["verify-export", str(path), *args], {"AUDIT_CHAIN_KEY": AUDIT_CHAIN_KEY})


def public_key(stack: Stack, tenant: Tenant) -> str:
    return verify(stack, tenant.owner_token).checkpoint_key.public_key.hex()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@contextmanager
def peak_rss_growth(pids: dict[str, int]) -> Iterator[dict[str, int]]:
    """Samples each process's resident memory every 20 ms; yields (then fills) its peak growth in KiB."""
    baseline = {name: rss_kib(pid) for name, pid in pids.items()}
    growth = dict.fromkeys(pids, 0)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            for name, pid in pids.items():
                growth[name] = max(growth[name], rss_kib(pid) - baseline[name])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield growth
    finally:
        done.set()
        sampler.join()


def export_lines(stack: Stack, token: str, **request: Any) -> bytes:
    """An export over gRPC: the chunks' bytes joined."""
    stub = audit_export_service_pb2_grpc.AuditExportServiceStub(stack.channels["audit"])
    chunks = stub.ExportAuditEvents(
        audit_export_service_pb2.ExportAuditEventsRequest(**request), metadata=bearer(token), timeout=60
    )
    return b"".join(chunk.data for chunk in chunks)
