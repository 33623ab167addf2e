"""API keys through the gateway: exchanged once at the edge, refused as they should be, over REST."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.gateway.conftest import start_gateway, tenantry_gateway_env
from tests.stack import Stack, Tenant, eventually

EXCHANGE = "/tenantry.auth.v1.ApiKeyService/ExchangeApiKey"
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


class CountingForwarder(grpc.GenericRpcHandler):
    """A real gRPC server that passes every unary call on to auth, counting them by method."""

    def __init__(self, target: str) -> None:
        self.calls: Counter[str] = Counter()
        self._channel = grpc.insecure_channel(target)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = details.method  # type: ignore[attr-defined]
        upstream = self._channel.unary_unary(method)

        def forward(request: bytes, context: grpc.ServicerContext) -> Any:
            self.calls[method] += 1
            try:
                return upstream(request, metadata=context.invocation_metadata(), timeout=10)
            except grpc.RpcError as error:
                context.abort(error.code(), error.details() or "")  # type: ignore[attr-defined]

        return grpc.unary_unary_rpc_method_handler(forward)


@contextmanager
def counting_gateway(stack: Stack, name: str, **env: str) -> Iterator[tuple[str, CountingForwarder]]:
    """A gateway whose ApiKeyService calls go through a counting forwarder; its URL and the forwarder."""
    forwarder = CountingForwarder(stack.processes["auth"].address)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[forwarder])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    gateway_env = {**tenantry_gateway_env(stack), **env}
    gateway_env["GATEWAY_UPSTREAMS"] += f";tenantry.auth.v1.ApiKeyService=127.0.0.1:{port}"
    gateway = start_gateway(name, gateway_env, stack.log_dir)
    try:
        yield f"http://{gateway.address}", forwarder
    finally:
        gateway.stop()
        server.stop(0)


@pytest.fixture(scope="module")
def counted(stack: Stack) -> Iterator[tuple[str, CountingForwarder]]:
    with counting_gateway(stack, "gateway-api-keys") as gateway:
        yield gateway


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Tenant:
    return stack.create_tenant("rest-keys")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_key(url: str, token: str, permissions: list[str], **fields: Any) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/api-keys", headers=bearer(token), json={"name": "rest", "permissions": permissions, **fields}
    )


def test_a_key_authenticates_rest_calls_in_either_header_with_one_exchange(
    counted: tuple[str, CountingForwarder], tenant: Tenant
) -> None:
    url, forwarder = counted
    created = create_key(url, tenant.owner_token, ["tenant.read"])
    assert created.status_code == 200, created.text
    assert created.headers["Cache-Control"] == "no-store"
    secret = created.json()["secret"]
    before = forwarder.calls[EXCHANGE]

    for headers in [{"X-Api-Key": secret}] * 20 + [bearer(secret)] * 20:
        reply = requests.get(f"{url}/api/v1/tenants/me", headers=headers)
        assert reply.status_code == 200, reply.text
        assert reply.json()["id"] == tenant.id
    # Forty requests, one call to auth: the gateway keeps the exchanged token.
    assert forwarder.calls[EXCHANGE] - before == 1


def test_wrong_unknown_or_doubled_keys_are_401_with_a_clear_message(
    counted: tuple[str, CountingForwarder], tenant: Tenant
) -> None:
    url, forwarder = counted
    cases = [
        ({"X-Api-Key": "sk_live_0123456789"}, "malformed"),
        (bearer("tnt_too_short"), "malformed"),
        ({"X-Api-Key": "tnt_aaaaaaaa_" + "c" * 52}, "API key is not valid"),
        ({"X-Api-Key": "tnt_aaaaaaaa_" + "c" * 52, **bearer(tenant.owner_token)}, "not both"),
        ({"X-Api-Key": "tnt_\u00e9"}, "printable ASCII"),
    ]
    before = forwarder.calls[EXCHANGE]
    for headers, message in cases:
        reply = requests.get(f"{url}/api/v1/tenants/me", headers=headers)
        assert reply.status_code == 401, (headers, reply.text)
        assert message in reply.json()["message"] and reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Traceback" not in reply.text
    # Only the well-formed unknown key reached auth; malformed and doubled ones were refused at the edge.
    assert forwarder.calls[EXCHANGE] - before == 1


def test_a_key_revoked_over_rest_is_refused_through_the_gateway_within_a_second(
    counted: tuple[str, CountingForwarder], tenant: Tenant
) -> None:
    url, _ = counted
    created = create_key(url, tenant.owner_token, ["tenant.read"]).json()
    secret, key_id = created["secret"], created["api_key"]["id"]
    assert requests.get(f"{url}/api/v1/tenants/me", headers={"X-Api-Key": secret}).status_code == 200

    revoked = requests.post(f"{url}/api/v1/api-keys/{key_id}:revoke", headers=bearer(tenant.owner_token), json={})
    started = time.monotonic()
    assert revoked.status_code == 200 and revoked.json()["state"] == "API_KEY_STATE_REVOKED"
    eventually(
        lambda: requests.get(f"{url}/api/v1/tenants/me", headers={"X-Api-Key": secret}).status_code == 401,
        timeout=1.0,
        interval=0.02,
    )
    assert time.monotonic() - started < 1.0
    refused = requests.get(f"{url}/api/v1/tenants/me", headers=bearer(secret))
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]


def test_listing_over_rest_shows_the_key_but_never_its_secret(
    counted: tuple[str, CountingForwarder], tenant: Tenant
) -> None:
    url, _ = counted
    created = create_key(url, tenant.owner_token, ["tenant.read"], expire_time="2099-01-01T00:00:00Z").json()
    listed = requests.get(f"{url}/api/v1/api-keys", headers=bearer(tenant.owner_token))
    assert listed.status_code == 200
    (key,) = [key for key in listed.json()["api_keys"] if key["id"] == created["api_key"]["id"]]
    assert key["prefix"] == created["secret"].split("_")[1] and key["expire_time"] == "2099-01-01T00:00:00Z"
    assert created["secret"].split("_")[2] not in listed.text
    one = requests.get(f"{url}/api/v1/api-keys/{key['id']}", headers=bearer(tenant.owner_token))
    assert one.status_code == 200 and "secret" not in one.json()


def test_the_exchange_over_rest_answers_a_token_that_is_never_stored_by_caches(
    counted: tuple[str, CountingForwarder], tenant: Tenant
) -> None:
    url, _ = counted
    secret = create_key(url, tenant.owner_token, ["tenant.read"]).json()["secret"]
    exchanged = requests.post(f"{url}/api/v1/api-keys:exchange", json={"api_key": secret})
    assert exchanged.status_code == 200 and exchanged.headers["Cache-Control"] == "no-store"
    token = exchanged.json()["access_token"]
    assert requests.get(f"{url}/api/v1/tenants/me", headers=bearer(token)).json()["id"] == tenant.id
    refused = requests.post(
        f"{url}/api/v1/api-keys:exchange", json={"api_key": secret[:-1] + ("a" if secret[-1] != "a" else "b")}
    )
    assert refused.status_code == 401


def test_escalation_over_rest_is_403_naming_the_permission(
    counted: tuple[str, CountingForwarder], stack: Stack, tenant: Tenant
) -> None:
    url, _ = counted
    admin = stack.add_member(tenant, f"admin-{uuid.uuid4().hex[:6]}@rest-keys.test", role="admin").access_token
    assert create_key(url, admin, ["app.*", "tenant.read"]).status_code == 200
    # A role holding api_keys.manage and tenant.read only.
    requests.post(
        f"{url}/api/v1/tenants/me/roles",
        headers=bearer(tenant.owner_token),
        json={"name": "rest_key_maker", "permissions": ["api_keys.manage", "tenant.read"]},
    ).raise_for_status()
    maker = stack.add_member(tenant, f"maker-{uuid.uuid4().hex[:6]}@rest-keys.test", role="rest_key_maker")
    refused = create_key(url, maker.access_token, ["tenant.read", "audit.read"])
    assert refused.status_code == 403 and "audit.read" in refused.json()["message"]


# Header values as a client may send them: printable ASCII, often shaped like a key.
HEADER_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=90),
    st.builds(lambda tail: "tnt_" + tail, st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=70)),
    st.builds(
        lambda prefix, secret: f"tnt_{prefix}_{secret}",
        st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=8, max_size=8),
        st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=52, max_size=52),
    ),
)


def test_any_presented_key_is_refused_with_401_never_a_5xx(counted: tuple[str, CountingForwarder]) -> None:
    url, _ = counted
    session = requests.Session()

    @settings(max_examples=80, deadline=None, database=None, derandomize=True)
    @given(value=HEADER_VALUES, as_bearer=st.booleans())
    def attempt(value: str, as_bearer: bool) -> None:
        # requests strips surrounding spaces of header values; HTTP clients do.
        headers = {"Authorization": f"Bearer {value}"} if as_bearer else {"X-Api-Key": value}
        reply = session.get(f"{url}/api/v1/tenants/me", headers=headers)
        assert reply.status_code == 401, (headers, reply.status_code, reply.text)
        assert reply.json()["code"] == 16 and "Traceback" not in reply.text

    attempt()


def test_an_address_spraying_keys_gets_429_and_costs_auth_nothing_more(stack: Stack, tenant: Tenant) -> None:
    """Past GATEWAY_RATE_LIMIT_PER_MINUTE refused keys, an address's keys that would need an
    exchange get 429 at the edge; keys it already exchanged go on working from memory."""
    with counting_gateway(stack, "gateway-key-spray", GATEWAY_RATE_LIMIT_PER_MINUTE="3") as (url, forwarder):
        secret = create_key(url, tenant.owner_token, ["tenant.read"]).json()["secret"]
        assert requests.get(f"{url}/api/v1/tenants/me", headers={"X-Api-Key": secret}).status_code == 200

        def guess() -> requests.Response:
            sprayed = "tnt_" + "".join(random.choices(BASE32, k=8)) + "_" + "".join(random.choices(BASE32, k=52))
            return requests.get(f"{url}/api/v1/tenants/me", headers={"X-Api-Key": sprayed})

        assert [guess().status_code for _ in range(3)] == [401, 401, 401]
        exchanges = forwarder.calls[EXCHANGE]
        refused = [guess() for _ in range(5)]
        assert [reply.status_code for reply in refused] == [429] * 5
        assert forwarder.calls[EXCHANGE] == exchanges
        body = refused[0].json()
        assert "refused API keys" in body["message"] and int(refused[0].headers["Retry-After"]) >= 1
        assert body["details"][0]["reason"] == "TOO_MANY_ATTEMPTS"
        # The key exchanged before still works: it is answered from memory.
        assert requests.get(f"{url}/api/v1/tenants/me", headers={"X-Api-Key": secret}).status_code == 200
        # Bearer tokens are checked at the edge and never limited by this.
        assert requests.get(f"{url}/api/v1/tenants/me", headers=bearer(tenant.owner_token)).status_code == 200
