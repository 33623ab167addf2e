"""The operator's password: PLATFORM_ADMIN_PASSWORD only seeds it, and an operator command resets it.

A stack of its own: resetting the operator's password would pull the rug from under the shared one.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tenantry.auth.v1 import auth_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from devtools.stack import ROOT, python_path
from kit import migrations
from tests.stack import INTERNAL_API_TOKEN, OPERATOR_EMAIL, OPERATOR_PASSWORD, Stack, bearer, eventually, rpc_error

NEW_PASSWORD = "a-new-operator-password"
MISMATCH_WARNING = "PLATFORM_ADMIN_PASSWORD differs from the operator's password in the database"


@pytest.fixture(scope="module")
def own_stack(fresh_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    url = fresh_database()
    for service in ("audit", "auth", "tenants"):
        migrations.upgrade(service, url)
    running = Stack(url, Path(tmp_path_factory.mktemp("operator-password")))
    try:
        running.start()
        yield running
    finally:
        running.stop()


def reset_command(
    stack: Stack, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.auth", "reset-operator-password", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": python_path(),
            "DATABASE_URL": stack.database_url,
            "INTERNAL_API_TOKEN": INTERNAL_API_TOKEN,
            "PLATFORM_ADMIN_EMAIL": OPERATOR_EMAIL,
            "BCRYPT_ROUNDS": "4",
            **(env or {}),
        },
    )


def auth_log(stack: Stack) -> str:
    return (stack.log_dir / "auth.log").read_text()


def list_tenants(stack: Stack, token: str) -> object:
    return stack.tenants.ListTenants(tenants_service_pb2.ListTenantsRequest(), metadata=bearer(token), timeout=10)


def test_reset_sets_the_password_ends_the_operators_sessions_and_is_audited(own_stack: Stack) -> None:
    stack = own_stack
    assert reset_command(stack, env={"PLATFORM_ADMIN_PASSWORD": OPERATOR_PASSWORD}).returncode == 0
    before = stack.login(OPERATOR_EMAIL, OPERATOR_PASSWORD)
    list_tenants(stack, before.access_token)

    result = reset_command(stack, stdin=NEW_PASSWORD + "\n")

    assert result.returncode == 0, result.stderr
    assert f"The password of operator {OPERATOR_EMAIL}" in result.stdout and "1 session(s) ended" in result.stdout
    assert NEW_PASSWORD not in result.stdout + result.stderr
    login_with_old = rpc_error(lambda: stack.login(OPERATOR_EMAIL, OPERATOR_PASSWORD))
    assert login_with_old.code() == grpc.StatusCode.UNAUTHENTICATED
    after = stack.login(OPERATOR_EMAIL, NEW_PASSWORD)
    # The running services hear of the revocation: the old access and refresh tokens stop working.
    eventually(
        lambda: rpc_error(lambda: list_tenants(stack, before.access_token)).code() == grpc.StatusCode.UNAUTHENTICATED
    )
    refresh = rpc_error(
        lambda: stack.auth.Refresh(auth_service_pb2.RefreshRequest(refresh_token=before.refresh_token), timeout=10)
    )
    assert refresh.code() == grpc.StatusCode.UNAUTHENTICATED
    # The first reset above found no live session; this one ended the session opened in between.
    events = eventually(
        lambda: [
            event
            for event in stack.audit_events(after.access_token, action="user.password_reset")
            if event.details["sessions_revoked"] == 1
        ]
    )
    assert len(events) == 1 and events[0].details["email"] == OPERATOR_EMAIL


def test_a_platform_admin_password_that_differs_from_the_database_is_reported_at_start(own_stack: Stack) -> None:
    stack = own_stack
    assert reset_command(stack, env={"PLATFORM_ADMIN_PASSWORD": OPERATOR_PASSWORD}).returncode == 0
    with stack.service_stopped("auth"):
        pass
    warnings = auth_log(stack).count(MISMATCH_WARNING)
    # The stack starts auth with PLATFORM_ADMIN_PASSWORD=OPERATOR_PASSWORD; the database will hold another.
    assert reset_command(stack, stdin=NEW_PASSWORD + "\n").returncode == 0
    with stack.service_stopped("auth"):
        pass
    eventually(lambda: auth_log(stack).count(MISMATCH_WARNING) == warnings + 1)
    assert "python -m services.auth reset-operator-password" in auth_log(stack)
    # Ignored, as the warning says: the database's password stands.
    assert stack.login(OPERATOR_EMAIL, NEW_PASSWORD).access_token
    assert rpc_error(lambda: stack.login(OPERATOR_EMAIL, OPERATOR_PASSWORD)).code() == grpc.StatusCode.UNAUTHENTICATED


def test_reset_takes_the_password_from_platform_admin_password_when_set(own_stack: Stack) -> None:
    stack = own_stack
    result = reset_command(stack, env={"PLATFORM_ADMIN_PASSWORD": OPERATOR_PASSWORD})

    assert result.returncode == 0, result.stderr
    assert stack.login(OPERATOR_EMAIL, OPERATOR_PASSWORD).access_token


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("nobody@tenantry.test",), NEW_PASSWORD, "no platform operator has the email nobody@tenantry.test"),
        ((), "short", "password: must be at least"),
        (("a", "b"), NEW_PASSWORD, "usage: python -m services.auth reset-operator-password [EMAIL]"),
    ],
)
def test_reset_refuses_bad_input_with_a_clear_message(
    own_stack: Stack, args: tuple[str, ...], stdin: str, message: str
) -> None:
    result = reset_command(own_stack, *args, stdin=stdin + "\n")

    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
