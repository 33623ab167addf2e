"""Bad input over REST: 400 naming the field (401 for an unreadable credential), never 500."""

from __future__ import annotations

import http.client
import json
import urllib.parse
import uuid
from pathlib import Path

import requests

from tests.gateway.conftest import start_gateway, tenantry_gateway_env
from tests.gateway.test_rest_api import auth, login, new_tenant
from tests.stack import OPERATOR_EMAIL, OPERATOR_PASSWORD, Stack, eventually


def refused(reply: requests.Response, field: str) -> None:
    assert reply.status_code == 400, (reply.status_code, reply.text)
    body = reply.json()
    assert body["code"] == 3 and field in body["message"], body


def operator(gateway: str) -> dict[str, str]:
    return auth(login(gateway, OPERATOR_EMAIL, OPERATOR_PASSWORD)["access_token"])


def tenant_body(slug: str, **owner: str) -> dict:  # type: ignore[type-arg]
    return {
        "name": "Rest Bad Input",
        "slug": slug,
        "owner": {"email": f"owner@{slug}.test", "full_name": "Owner", "password": "owner-password-1", **owner},
    }


def raw_post(gateway: str, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{gateway}{path}", data=body, headers={"Content-Type": "application/json", **headers})


def test_nul_in_strings_is_400_naming_the_field(gateway: str) -> None:
    refused(
        requests.post(f"{gateway}/api/v1/auth/login", json={"email": "a\u0000@b.test", "password": "x" * 10}), "email"
    )
    slug = f"nul-{uuid.uuid4().hex[:8]}"
    as_operator = operator(gateway)
    refused(
        requests.post(f"{gateway}/api/v1/tenants", headers=as_operator, json=tenant_body(slug, full_name="A\u0000")),
        "owner.full_name",
    )
    refused(
        requests.post(f"{gateway}/api/v1/tenants", headers=as_operator, json={**tenant_body(slug), "name": "\u0000"}),
        "name",
    )
    _, _, owner = new_tenant(gateway)
    for settings, field in [({"k\u0000": 1}, "tenant.settings"), ({"k": "v\u0000"}, "tenant.settings.k")]:
        reply = requests.patch(
            f"{gateway}/api/v1/tenants/me",
            params={"update_mask": "settings"},
            headers=auth(owner),
            json={"settings": settings},
        )
        refused(reply, field)
    refused(
        requests.get(f"{gateway}/api/v1/audit/events", params={"resource_type": "a\u0000"}, headers=auth(owner)),
        "resource_type",
    )
    # The slug stayed free: the refused owner wrote nothing.
    assert requests.post(f"{gateway}/api/v1/tenants", headers=as_operator, json=tenant_body(slug)).status_code == 200


def test_non_finite_numbers_in_settings_are_400(gateway: str) -> None:
    _, _, owner = new_tenant(gateway)
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = b'{"settings": {"limits": {"seats": ' + literal.encode() + b"}}}"
        reply = requests.patch(
            f"{gateway}/api/v1/tenants/me?update_mask=settings",
            data=body,
            headers={**auth(owner), "Content-Type": "application/json"},
        )
        refused(reply, "settings.limits.seats")


def test_json_nested_fifty_thousand_deep_is_400(gateway: str) -> None:
    body = b'{"email": "a@b.test", "password": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    reply = raw_post(gateway, "/api/v1/auth/login", body, {})
    refused(reply, "nests deeper")


def test_settings_nested_within_the_body_bound_but_past_the_services_bound_name_the_field(gateway: str) -> None:
    _, _, owner = new_tenant(gateway)
    settings: dict = {}  # type: ignore[type-arg]
    for _ in range(22):
        settings = {"a": settings}
    reply = requests.patch(
        f"{gateway}/api/v1/tenants/me",
        params={"update_mask": "settings"},
        headers=auth(owner),
        json={"settings": settings},
    )
    refused(reply, "tenant.settings.a.a")


def test_a_control_character_in_a_path_variable_is_400(gateway: str) -> None:
    reply = requests.post(f"{gateway}/api/v1/tenants/abc%0A:suspend", headers=operator(gateway), json={})
    refused(reply, "tenant_id")


def test_a_slug_with_a_trailing_newline_is_400(gateway: str) -> None:
    slug = f"nl-{uuid.uuid4().hex[:8]}"
    reply = requests.post(
        f"{gateway}/api/v1/tenants", headers=operator(gateway), json={**tenant_body(slug), "slug": slug + "\n"}
    )
    refused(reply, "slug")


def test_a_boolean_is_never_an_enum_string_or_number(gateway: str) -> None:
    as_operator = operator(gateway)
    slug = f"bool-{uuid.uuid4().hex[:8]}"
    for field, value in [("subscription_tier", True), ("subscriptionTier", False), ("name", True)]:
        reply = requests.post(
            f"{gateway}/api/v1/tenants", headers=as_operator, json={**tenant_body(slug), field: value}
        )
        refused(reply, "subscription_tier" if field != "name" else "name")
    refused(requests.get(f"{gateway}/api/v1/tenants", params={"page_size": "true"}, headers=as_operator), "page_size")
    refused(
        raw_post(gateway, "/api/v1/auth/login", b'{"email": "a@b.test", "password": true}', {}),
        "password",
    )


def test_a_lone_surrogate_escape_is_400_naming_the_field(gateway: str) -> None:
    body = json.dumps({**tenant_body(f"sur-{uuid.uuid4().hex[:8]}"), "settings": {"theme": "dark \udc00"}}).encode()
    refused(raw_post(gateway, "/api/v1/tenants", body, operator(gateway)), "settings.theme")


def test_a_password_with_nul_is_400_over_rest(gateway: str) -> None:
    slug = f"pw-{uuid.uuid4().hex[:8]}"
    reply = requests.post(
        f"{gateway}/api/v1/tenants", headers=operator(gateway), json=tenant_body(slug, password="abc\u0000abc\u0000abc")
    )
    refused(reply, "owner.password")


def _raw_request(gateway: str, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> int:
    """A request with header bytes that requests would refuse to send."""
    address = urllib.parse.urlsplit(gateway)
    connection = http.client.HTTPConnection(address.hostname or "", address.port)
    try:
        connection.putrequest(method, path)
        for name, value in [*headers, (b"Content-Length", str(len(body)).encode())]:
            connection.putheader(name, value)
        connection.endheaders(body)
        return connection.getresponse().status
    finally:
        connection.close()


def test_latin1_bytes_in_the_authorization_header_are_401(gateway: str) -> None:
    latin1 = [(b"Authorization", b"Bearer caf\xe9")]
    assert _raw_request(gateway, "GET", "/api/v1/tenants/me", latin1) == 401
    login_body = json.dumps({"email": "a@b.test", "password": "password-1"}).encode()
    content = (b"Content-Type", b"application/json")
    assert _raw_request(gateway, "POST", "/api/v1/auth/login", [*latin1, content], login_body) == 401


def test_latin1_bytes_in_the_user_agent_are_not_forwarded(gateway: str) -> None:
    login_body = json.dumps({"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD}).encode()
    headers = [(b"Content-Type", b"application/json"), (b"User-Agent", b"navigateur/\xe9t\xe9")]
    assert _raw_request(gateway, "POST", "/api/v1/auth/login", headers, login_body) == 200


def test_token_responses_are_never_cached(gateway: str) -> None:
    reply = requests.post(f"{gateway}/api/v1/auth/login", json={"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD})
    assert reply.status_code == 200
    assert reply.headers["Cache-Control"] == "no-store" and reply.headers["Pragma"] == "no-cache"
    refreshed = requests.post(f"{gateway}/api/v1/auth/refresh", json={"refresh_token": reply.json()["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["Cache-Control"] == "no-store" and refreshed.headers["Pragma"] == "no-cache"
    other = requests.get(f"{gateway}/api/v1/tenants", headers=auth(reply.json()["access_token"]))
    assert other.status_code == 200 and "Cache-Control" not in other.headers


def test_a_wrong_password_gets_no_invalid_token_challenge(gateway: str) -> None:
    reply = requests.post(f"{gateway}/api/v1/auth/login", json={"email": OPERATOR_EMAIL, "password": "wrong-pass-1"})
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="tenantry"'  # a challenge, but no token error
    bad_token = requests.get(f"{gateway}/api/v1/tenants/me", headers=auth("not.a.token"))
    assert bad_token.status_code == 401 and 'error="invalid_token"' in bad_token.headers["WWW-Authenticate"]


def test_anonymous_system_info_lists_no_addresses(gateway: str, stack: Stack) -> None:
    info = requests.get(f"{gateway}/api/v1/system/info")
    assert info.status_code == 200
    text = info.text
    for process in stack.processes.values():
        port = process.address.rpartition(":")[2]
        assert port not in text and process.address not in text
    assert {service["status"] for service in info.json()["services"]} == {"SERVING"}


def test_the_gateways_client_address_reaches_the_audit_trail(stack: Stack, tmp_path: Path) -> None:
    """Behind a trusted proxy the gateway decides the client address; services believe it (and only it)."""
    process = start_gateway(
        "gateway-proxied", {**tenantry_gateway_env(stack), "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"}, tmp_path
    )
    try:
        request_id = f"proxied-{uuid.uuid4().hex[:8]}"
        reply = requests.post(
            f"http://{process.address}/api/v1/auth/login",
            json={"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.23", "X-Request-Id": request_id, "User-Agent": "browser/7"},
        )
        assert reply.status_code == 200
    finally:
        process.stop()
    stored = eventually(
        lambda: stack.sql("SELECT host(ip_address), user_agent FROM audit.events WHERE request_id = %s", (request_id,))
    )
    assert stored[0] == ("198.51.100.23", "browser/7")
