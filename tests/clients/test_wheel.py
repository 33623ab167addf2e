"""The client library as a backend gets it: a wheel built from the repository,
installed into a virtual environment of its own, used against a running Tenantry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest

from devtools.stack import ROOT
from tests.stack import INTERNAL_API_TOKEN, Stack

USE_THE_WHEEL = """
import asyncio, json, sys, uuid
import tenantry_client
from tenantry.auth.v1 import api_keys_service_pb2  # the contracts come with the package
from tenantry_client.audit import AuditClient, AuditEvent, every_tenant
from tenantry_client.credentials import internal_token
from tenantry_client.verifier import TenantryVerifier

auth, audit, internal, token, action = sys.argv[1:6]

async def main():
    verifier = TenantryVerifier(auth, credentials=internal_token(internal))
    await verifier.start()
    await verifier.wait_ready()
    principal = await verifier.authenticate(authorization="Bearer " + token)
    await verifier.close()
    client = AuditClient(audit, credentials=every_tenant(internal_token(internal)))
    event = AuditEvent(action, "wheel", "installed", principal.tenant_id, user_id=principal.user_id)
    appended = await client.append(principal.tenant_id, [event])
    await client.close()
    print(json.dumps({
        "package": tenantry_client.__file__,
        "contracts": api_keys_service_pb2.__file__,
        "tenant": str(principal.tenant_id),
        "appended": appended,
    }))

asyncio.run(main())
"""


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_the_wheel_installs_alone_and_verifies_tokens_and_appends_audit(stack: Stack, tmp_path: Path) -> None:
    # A copy of what pip sees in the repository (the package and gen/), so the
    # build leaves nothing in the worktree.
    source = tmp_path / "repository"
    shutil.copytree(
        ROOT / "clients" / "python",
        source / "clients" / "python",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    shutil.copytree(ROOT / "gen", source / "gen", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        wheels,
        source / "clients" / "python",
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("tenantry_client-*.whl")

    # The new environment gets its dependencies (grpcio, protobuf, PyJWT, …)
    # from this one's site-packages, which holds neither tenantry_client nor
    # the generated contracts (those are on this process's PYTHONPATH only).
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path
    )
    run(sys.executable, "-m", "pip", "--python", python, "check", cwd=tmp_path)

    tenant = stack.create_tenant("wheel")
    action = f"wheel.installed{uuid.uuid4().hex[:6]}"
    clean_env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    script = tmp_path / "use_the_wheel.py"
    script.write_text(USE_THE_WHEEL)
    answer = json.loads(
        run(
            python,
            script,
            stack.processes["auth"].address,
            stack.processes["audit"].address,
            INTERNAL_API_TOKEN,
            tenant.owner_token,
            action,
            cwd=tmp_path,
            env=clean_env,
        )
    )
    assert answer["package"].startswith(purelib) and answer["contracts"].startswith(purelib)
    assert answer["tenant"] == tenant.id and answer["appended"] == 1
    assert [event.resource_id for event in stack.audit_events(tenant.owner_token, action=action)] == ["installed"]
