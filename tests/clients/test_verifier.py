"""tenantry-client's verifier and ASGI middleware against a running Tenantry."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from tenantry.auth.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc, auth_service_pb2
from tenantry_client.asgi import TenantryMiddleware, requires
from tenantry_client.context import ACTOR_API_KEY, current_principal
from tenantry_client.credentials import internal_token, renewed
from tenantry_client.errors import InvalidToken, PermissionMissing, VerificationUnavailable
from tenantry_client.verifier import TenantryVerifier

from tests.stack import INTERNAL_API_TOKEN, Stack, Tenant, bearer


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Tenant:
    return stack.create_tenant("client")


def with_verifier(stack: Stack, check: Callable[[TenantryVerifier], Awaitable[Any]], *, token: str = "") -> Any:
    async def run() -> Any:
        verifier = TenantryVerifier(
            stack.processes["auth"].address, credentials=internal_token(token or INTERNAL_API_TOKEN)
        )
        await verifier.start()
        try:
            if not token:
                await verifier.wait_ready()
            return await check(verifier)
        finally:
            await verifier.close()

    return asyncio.run(run())


def test_a_valid_token_gives_its_user_tenant_and_permissions(stack: Stack, tenant: Tenant) -> None:
    principal = with_verifier(stack, lambda v: v.authenticate(authorization=f"Bearer {tenant.owner_token}"))
    assert str(principal.tenant_id) == tenant.id
    assert "owner" in principal.roles
    principal.require("app.tickets.write", "audit.read")  # the owner's app.* covers any app permission
    with pytest.raises(PermissionMissing, match=r"platform\.tenants\.manage"):
        principal.require("platform.tenants.manage")


def test_nothing_is_accepted_before_the_revocation_snapshot(stack: Stack, tenant: Tenant) -> None:
    async def check(verifier: TenantryVerifier) -> None:
        await asyncio.sleep(0.5)  # the stream is refused: the credential is wrong
        with pytest.raises(VerificationUnavailable, match="revocations"):
            await verifier.verify(tenant.owner_token)

    with_verifier(stack, check, token="not-the-internal-token-at-all")


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"), "invalid"),
        (lambda t: jwt.encode({**jwt.decode(t, options={"verify_signature": False})}, "k" * 32, "HS256"), "algorithm"),
        (lambda t: jwt.encode({"sub": "x"}, None, "none"), "algorithm"),
        (lambda t: "not a token", "malformed"),
    ],
    ids=["bad signature", "HS256", "alg none", "garbage"],
)
def test_forged_tokens_are_refused(stack: Stack, tenant: Tenant, forge: Callable[[str], str], reason: str) -> None:
    async def check(verifier: TenantryVerifier) -> None:
        with pytest.raises(InvalidToken, match=reason):
            await verifier.verify(forge(tenant.owner_token))

    with_verifier(stack, check)


def test_a_logged_out_session_is_refused_within_a_second(stack: Stack) -> None:
    person = stack.create_tenant("client-logout")

    async def check(verifier: TenantryVerifier) -> float:
        await verifier.verify(person.owner_token)
        stack.auth.Logout(auth_service_pb2.LogoutRequest(), metadata=bearer(person.owner_token), timeout=10)
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            try:
                await verifier.verify(person.owner_token)
            except InvalidToken as refused:
                assert refused.message == "session has ended"
                return time.monotonic() - started
            await asyncio.sleep(0.02)
        raise AssertionError("still accepted a second after logout")

    assert with_verifier(stack, check) < 1.0


def test_an_api_key_is_exchanged_once_and_refused_once_revoked(stack: Stack, tenant: Tenant) -> None:
    keys = api_keys_service_pb2_grpc.ApiKeyServiceStub(stack.channels["auth"])
    created = keys.CreateApiKey(
        api_keys_service_pb2.CreateApiKeyRequest(name="tickets-importer", permissions=["app.tickets.write"]),
        metadata=bearer(tenant.owner_token),
        timeout=10,
    )

    async def check(verifier: TenantryVerifier) -> None:
        first = await verifier.authenticate(api_key=created.secret)
        again = await verifier.authenticate(authorization=f"Bearer {created.secret}")
        assert first == again and first.actor_type == ACTOR_API_KEY and str(first.tenant_id) == tenant.id
        first.require("app.tickets.write")
        with pytest.raises(PermissionMissing):
            first.require("app.tickets.read")
        with pytest.raises(InvalidToken, match="malformed"):
            await verifier.authenticate(api_key="tnt_short_key")
        with pytest.raises(InvalidToken, match="not both"):
            await verifier.authenticate(authorization=f"Bearer {tenant.owner_token}", api_key=created.secret)
        keys.RevokeApiKey(
            api_keys_service_pb2.RevokeApiKeyRequest(id=created.api_key.id), metadata=bearer(tenant.owner_token)
        )
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            try:
                await verifier.authenticate(api_key=created.secret)
            except InvalidToken as refused:
                assert refused.message == "API key has been revoked"
                return
            await asyncio.sleep(0.02)
        raise AssertionError("a revoked key was still accepted a second later")

    with_verifier(stack, check)


async def _asgi_call(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": "/tickets", "headers": headers}, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def _tenant_echo(scope: Any, receive: Any, send: Any) -> None:
    """An application that answers the tenant of its caller, if it may read tickets."""
    try:
        principal = requires("app.tickets.read")()
    except PermissionMissing as refused:
        status, body = 403, refused.message.encode()
    else:
        status, body = 200, str(principal.tenant_id).encode()
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_the_asgi_middleware_puts_the_caller_in_context_and_refuses_the_rest(stack: Stack, tenant: Tenant) -> None:
    viewer = stack.add_member(tenant, f"viewer@{tenant.slug}.test", role="viewer")

    async def check(verifier: TenantryVerifier) -> None:
        app = TenantryMiddleware(_tenant_echo, verifier=verifier)
        owner = await _asgi_call(app, [(b"authorization", f"Bearer {tenant.owner_token}".encode())])
        assert owner == (200, tenant.id.encode())
        assert (await _asgi_call(app, [(b"authorization", f"Bearer {viewer.access_token}".encode())]))[0] == 403
        status, body = await _asgi_call(app, [])
        assert status == 401 and json.loads(body)["code"] == "UNAUTHENTICATED"
        assert (await _asgi_call(app, [(b"authorization", b"Bearer forged.token.here")]))[0] == 401
        assert current_principal() is None  # nothing leaks out of a request

    with_verifier(stack, check)


def test_a_renewed_credential_is_fetched_once_at_a_time_and_again_at_half_its_life() -> None:
    fetched: list[int] = []

    async def fetch() -> tuple[str, int]:
        fetched.append(1)
        await asyncio.sleep(0.05)
        return f"token-{len(fetched)}", lifetime[0]

    lifetime = [600]

    async def run() -> list[Any]:
        source = renewed(fetch)
        together = await asyncio.gather(*(source() for _ in range(5)))
        lifetime[0] = 0  # the next token is due for renewal at once
        source = renewed(fetch)
        return [*together, await source(), await source()]

    answers = asyncio.run(run())
    assert answers[:5] == [(("authorization", "Bearer token-1"),)] * 5
    assert answers[5:] == [(("authorization", "Bearer token-2"),), (("authorization", "Bearer token-3"),)]
    assert len(fetched) == 3
