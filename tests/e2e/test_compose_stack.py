"""`docker compose up` gives a working stack: driven over REST as an external client would.

Runs when a Docker engine with the base images is reachable (`.ci/run` makes one); skipped otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.stack import ROOT, free_port
from tests.postgres import docker_has_images
from tests.stack import eventually

pytestmark = pytest.mark.skipif(
    not docker_has_images("postgres:15", "python:3.11-slim"),
    reason="no Docker engine with the postgres:15 and python:3.11-slim images is reachable",
)

OPERATOR_PASSWORD = "compose-operator-password"


@pytest.fixture(scope="module")
def compose_gateway(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    from testcontainers.compose import DockerCompose

    ports = {
        name: str(free_port()) for name in ("AUTH_PORT", "TENANTS_PORT", "AUDIT_PORT", "GATEWAY_PORT", "POSTGRES_PORT")
    }
    settings = {
        **ports,
        "COMPOSE_PROJECT_NAME": f"tenantry-test-{uuid.uuid4().hex[:6]}",
        "PLATFORM_ADMIN_PASSWORD": OPERATOR_PASSWORD,
        "INTERNAL_API_TOKEN": uuid.uuid4().hex,
        "AUDIT_CHAIN_KEY": uuid.uuid4().hex,
        "API_KEY_HASH_KEY": uuid.uuid4().hex,
        "POSTGRES_PASSWORD": uuid.uuid4().hex,
        "BCRYPT_ROUNDS": "4",
    }
    env_file = Path(tmp_path_factory.mktemp("compose")) / "test.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    for key, value in settings.items():
        monkeypatch_module.setenv(key, value)
    stack = DockerCompose(ROOT / "deploy", "docker-compose.yml", build=True, wait=True, env_file=str(env_file))
    with stack:
        yield f"http://127.0.0.1:{ports['GATEWAY_PORT']}"


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_an_external_client_runs_through_the_compose_stack(compose_gateway: str) -> None:
    gateway = compose_gateway
    assert eventually(lambda: requests.get(f"{gateway}/health", timeout=2).status_code == 200, timeout=60)

    operator = requests.post(
        f"{gateway}/api/v1/auth/login", json={"email": "admin@tenantry.local", "password": OPERATOR_PASSWORD}
    ).json()["access_token"]
    slug = f"compose-{uuid.uuid4().hex[:6]}"
    created = requests.post(
        f"{gateway}/api/v1/tenants",
        headers={"Authorization": f"Bearer {operator}"},
        json={
            "name": "Compose Co",
            "slug": slug,
            "owner": {"email": f"owner@{slug}.test", "full_name": "O", "password": "owner-password"},
        },
    )
    assert created.status_code == 200, created.text

    owner = requests.post(
        f"{gateway}/api/v1/auth/login", json={"email": f"owner@{slug}.test", "password": "owner-password"}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {owner}"}
    assert requests.get(f"{gateway}/api/v1/tenants/me", headers=headers).json()["slug"] == slug
    updated = requests.patch(f"{gateway}/api/v1/tenants/me?update_mask=name", headers=headers, json={"name": "Renamed"})
    assert updated.json()["name"] == "Renamed"
    invitation = {"email": f"admin@{slug}.test", "role": "admin"}
    invited = requests.post(f"{gateway}/api/v1/tenants/me/invitations", headers=headers, json=invitation)
    assert invited.status_code == 200 and invited.json()["status"] == "INVITATION_STATUS_PENDING"

    actions = eventually(
        lambda: (
            {e["action"] for e in requests.get(f"{gateway}/api/v1/audit/events", headers=headers).json()["events"]}
            >= {"tenant.created", "tenant.updated", "membership.created", "invitation.created"}
        )
    )
    assert actions

    created_key = requests.post(
        f"{gateway}/api/v1/api-keys", headers=headers, json={"name": "compose", "permissions": ["tenant.read"]}
    )
    assert created_key.status_code == 200, created_key.text
    key = {"X-Api-Key": created_key.json()["secret"]}
    assert requests.get(f"{gateway}/api/v1/tenants/me", headers=key).json()["slug"] == slug

    assert requests.post(f"{gateway}/api/v1/auth/logout", headers=headers, json={}).status_code == 200
    assert eventually(
        lambda: requests.get(f"{gateway}/api/v1/tenants/me", headers=headers).status_code == 401, timeout=2
    )
