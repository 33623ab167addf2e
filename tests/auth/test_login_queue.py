"""The password-hashing queue is bounded: beyond it a login is refused at once
with a retry delay (429 with Retry-After at the gateway), never left to time out.
And a hash of another cost than configured is upgraded at the next login."""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
import grpc
import pytest
import requests
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from devtools.stack import ServiceProcess, free_port
from kit.errors import ResourceExhausted
from services.auth.service.passwords import PasswordHasher
from tests.gateway.conftest import start_gateway, tenantry_gateway_env
from tests.stack import OWNER_PASSWORD, Stack


def test_the_queue_refuses_at_once_beyond_its_bound() -> None:
    async def run() -> tuple[list[object], float]:
        hasher = PasswordHasher(rounds=10, max_workers=1, max_queue=1)
        stored = await hasher.hash("correct horse")
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(hasher.verify("correct horse", stored) for _ in range(6)), return_exceptions=True
        )
        hasher.close()
        return list(outcomes), time.perf_counter() - started

    outcomes, _ = asyncio.run(run())
    refused = [outcome for outcome in outcomes if isinstance(outcome, ResourceExhausted)]
    assert outcomes.count(True) == 2 and len(refused) == 4
    assert all(error.retry_after_seconds and error.retry_after_seconds >= 1 for error in refused)


def test_a_refused_caller_waits_for_nothing() -> None:
    async def run() -> float:
        hasher = PasswordHasher(rounds=12, max_workers=1, max_queue=0)
        busy = asyncio.ensure_future(hasher.hash("first"))
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(ResourceExhausted):
            await hasher.hash("second")
        refused_after = time.perf_counter() - started
        await busy
        hasher.close()
        return refused_after

    # One cost-12 hash takes a few hundred milliseconds; the refusal does not wait for it.
    assert asyncio.run(run()) < 0.05


def test_a_place_is_held_from_admission_through_the_hashes() -> None:
    """A login takes its place before its database work: callers arriving together
    cannot all pass a check that reserved nothing, only to be refused after it."""

    async def run() -> None:
        hasher = PasswordHasher(rounds=4, max_workers=1, max_queue=1)
        with hasher.slot() as first, hasher.slot():
            with pytest.raises(ResourceExhausted), hasher.slot():
                pass
            with pytest.raises(ResourceExhausted):
                await hasher.verify("correct horse", None)
            # The holder hashes and checks within its one place.
            stored = await first.hash("correct horse")
            assert await first.verify("correct horse", stored)
            assert not await first.verify("wrong horse", stored)
        # Given back when the holder is done.
        assert await hasher.verify("correct horse", stored)
        hasher.close()

    asyncio.run(run())


def test_a_login_burst_beyond_the_queue_gets_resource_exhausted_and_429(stack: Stack, tmp_path: Path) -> None:
    tenant = stack.create_tenant("burst")
    address = f"127.0.0.1:{free_port()}"
    env = {
        **stack.processes["auth"].env,
        "AUTH_LISTEN_ADDR": address,
        "BCRYPT_ROUNDS": "12",
        "BCRYPT_MAX_WORKERS": "1",
        "BCRYPT_MAX_QUEUE": "1",
    }
    replica = ServiceProcess("auth", address, env, log_path=tmp_path / "auth-queue.log")
    replica.start()
    try:
        replica.wait_serving()
        with grpc.insecure_channel(address) as channel:
            auth = auth_service_pb2_grpc.AuthServiceStub(channel)
            login = auth_service_pb2.LoginRequest(email=tenant.owner_email, password=OWNER_PASSWORD)

            def attempt() -> tuple[str, str | None]:
                try:
                    auth.Login(login, timeout=30)
                    return "OK", None
                except grpc.RpcError as error:
                    trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
                    return error.code().name, trailers.get("retry-after")  # type: ignore[attr-defined]

            with ThreadPoolExecutor(max_workers=8) as pool:
                outcomes = list(pool.map(lambda _: attempt(), range(8)))
        codes = [code for code, _ in outcomes]
        assert "OK" in codes and "RESOURCE_EXHAUSTED" in codes and set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}
        assert all(hint and int(hint) >= 1 for code, hint in outcomes if code == "RESOURCE_EXHAUSTED")

        gateway_env = tenantry_gateway_env(stack)
        gateway_env["GATEWAY_UPSTREAMS"] = gateway_env["GATEWAY_UPSTREAMS"].replace(
            stack.processes["auth"].address, address
        )
        gateway = start_gateway("gateway-queue", gateway_env, tmp_path)
        try:
            url = f"http://{gateway.address}/api/v1/auth/login"
            body = {"email": tenant.owner_email, "password": OWNER_PASSWORD}
            with ThreadPoolExecutor(max_workers=8) as pool:
                replies = list(pool.map(lambda _: requests.post(url, json=body, timeout=30), range(8)))
            statuses = [reply.status_code for reply in replies]
            assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}
            for reply in replies:
                if reply.status_code == 429:
                    assert int(reply.headers["Retry-After"]) >= 1
                    assert reply.json()["message"] == "too many password checks in progress; retry shortly"
        finally:
            gateway.stop()
    finally:
        replica.stop()


def test_a_hash_of_another_cost_is_upgraded_at_login(stack: Stack) -> None:
    tenant = stack.create_tenant("rehash")
    old_hash = bcrypt.hashpw(OWNER_PASSWORD.encode(), bcrypt.gensalt(5)).decode()
    stack.sql("UPDATE auth.users SET password_hash = %s WHERE email = %s", (old_hash, tenant.owner_email))
    stack.login(tenant.owner_email, OWNER_PASSWORD)
    (stored,) = stack.sql("SELECT password_hash FROM auth.users WHERE email = %s", (tenant.owner_email,))[0]
    assert stored.startswith("$2b$04$") and bcrypt.checkpw(OWNER_PASSWORD.encode(), stored.encode())
    # A wrong password upgrades nothing.
    stack.sql("UPDATE auth.users SET password_hash = %s WHERE email = %s", (old_hash, tenant.owner_email))
    with pytest.raises(grpc.RpcError):
        stack.login(tenant.owner_email, f"wrong-{uuid.uuid4().hex}")
    assert stack.sql("SELECT password_hash FROM auth.users WHERE email = %s", (tenant.owner_email,)) == [(old_hash,)]
