"""`make run EXAMPLES=tickets` and the README's steps, as a developer follows them."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from devtools.stack import free_port
from tests.e2e.test_make_run import devtool, make_run, run_env  # noqa: F401 - run_env is a fixture
from tests.stack import eventually


@pytest.mark.slow
def test_make_run_with_the_tickets_example_serves_it_through_the_gateway(
    run_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    tickets_address = f"127.0.0.1:{free_port()}"
    # A mail catcher port of its own too: other runs on this machine may hold the default.
    env = {
        **run_env,
        "EXAMPLES": "tickets",
        "TICKETS_LISTEN_ADDR": tickets_address,
        "MAIL_CATCHER_PORT": str(free_port()),
    }
    with make_run(env, tmp_path / "run.log") as run:
        assert f"tickets  grpc://{tickets_address}" in run.text()
        assert "/acme/v1/tickets" in requests.get(f"{run.gateway}/openapi.json", timeout=10).json()["paths"]
        assert requests.get(f"{run.gateway}/acme/v1/tickets", timeout=10).status_code == 401
        seeded = devtool("seed", env)
        assert seeded.returncode == 0, seeded.stderr
        login = requests.post(
            f"{run.gateway}/api/v1/auth/login",
            json={"email": "owner@acme.example", "password": "demo-owner-password", "tenant_slug": "acme"},
            timeout=30,
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = requests.post(
            f"{run.gateway}/acme/v1/tickets", headers=headers, json={"title": "Street light out"}, timeout=10
        )
        assert created.status_code == 200, created.text
        listed = requests.get(f"{run.gateway}/acme/v1/tickets", headers=headers, timeout=10).json()["tickets"]
        assert [ticket["id"] for ticket in listed] == [created.json()["id"]]

        def audited() -> list[dict]:
            reply = requests.get(
                f"{run.gateway}/api/v1/audit/events", params={"action": "tickets.created"}, headers=headers, timeout=10
            )
            return list(reply.json().get("events", []))

        (event,) = eventually(audited)
        assert event["resource_id"] == created.json()["id"]
    assert "stopped by itself" not in run.text() and "Traceback" not in run.text()


def test_an_unknown_example_is_named(run_env: dict[str, str]) -> None:  # noqa: F811
    refused = devtool("run", {**run_env, "EXAMPLES": "tickets,invoices"})
    assert refused.returncode != 0 and "unknown example invoices; known: tickets" in refused.stderr
