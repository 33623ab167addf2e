"""Every REST route of Tenantry through the gateway, as an external client uses it."""

from __future__ import annotations

import json
import re
import uuid

import jwt
import requests
from openapi_spec_validator import validate

from tests.gateway.conftest import ALLOWED_ORIGIN, start_gateway, tenantry_gateway_env
from tests.stack import OPERATOR_EMAIL, OPERATOR_PASSWORD, Stack, eventually


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(gateway: str, email: str, password: str, **extra: str) -> dict:  # type: ignore[type-arg]
    reply = requests.post(f"{gateway}/api/v1/auth/login", json={"email": email, "password": password, **extra})
    assert reply.status_code == 200, reply.text
    return reply.json()


def new_tenant(gateway: str) -> tuple[dict, str, str]:  # type: ignore[type-arg]
    operator = login(gateway, OPERATOR_EMAIL, OPERATOR_PASSWORD)["access_token"]
    slug = f"rest-{uuid.uuid4().hex[:8]}"
    email = f"owner@{slug}.test"
    created = requests.post(
        f"{gateway}/api/v1/tenants",
        headers=auth(operator),
        json={
            "name": "REST Co",
            "slug": slug,
            "subscriptionTier": "SUBSCRIPTION_TIER_PREMIUM",
            "settings": {"theme": "dark"},
            "owner": {"email": email, "fullName": "Rest Owner", "password": "rest-owner-pass"},
        },
    )
    assert created.status_code == 200, created.text
    return created.json(), email, login(gateway, email, "rest-owner-pass")["access_token"]


def invite_and_join(gateway: str, stack: Stack, owner: str, email: str, role: str = "admin") -> dict:  # type: ignore[type-arg]
    """Invites over REST, then accepts over REST with the emailed token; the new member's tokens."""
    invited = requests.post(
        f"{gateway}/api/v1/tenants/me/invitations", headers=auth(owner), json={"email": email, "role": role}
    )
    assert invited.status_code == 200, invited.text
    assert invited.json()["status"] == "INVITATION_STATUS_PENDING" and "token" not in invited.text
    accepted = requests.post(
        f"{gateway}/api/v1/invitations:accept",
        json={"token": stack.invitation_token(email), "full_name": "A Member", "password": "member-pass-1"},
    )
    assert accepted.status_code == 200, accepted.text
    return accepted.json()["tokens"]  # type: ignore[no-any-return]


def test_the_whole_rest_surface(gateway: str, stack: Stack) -> None:
    tokens = login(gateway, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    tenant, email, owner = new_tenant(gateway)
    assert tenant["subscription_tier"] == "SUBSCRIPTION_TIER_PREMIUM" and tenant["settings"] == {"theme": "dark"}

    me = requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(owner)).json()
    assert me["id"] == tenant["id"]
    patched = requests.patch(
        f"{gateway}/api/v1/tenants/me", params={"update_mask": "name"}, headers=auth(owner), json={"name": "Patched"}
    )
    assert patched.status_code == 200 and patched.json()["name"] == "Patched"

    # The seed path stays an alias of invitations, without a password.
    alias_email = f"admin-{uuid.uuid4().hex[:6]}@x.test"
    added = requests.post(
        f"{gateway}/api/v1/tenants/me/admins", headers=auth(owner), json={"email": alias_email, "role": "admin"}
    )
    assert added.status_code == 200 and added.json()["role"] == "admin" and added.json()["email"] == alias_email
    member_email = f"member-{uuid.uuid4().hex[:6]}@x.test"
    joined = invite_and_join(gateway, stack, owner, member_email, "viewer")
    members = requests.get(f"{gateway}/api/v1/tenants/me/members", headers=auth(owner)).json()["members"]
    assert {m["email"] for m in members} == {email, member_email}
    alias = requests.get(f"{gateway}/api/v1/tenants/me/admins", headers=auth(owner)).json()["members"]
    assert alias == members
    me = requests.get(f"{gateway}/api/v1/auth/me", headers=auth(joined["access_token"])).json()
    assert me["email"] == member_email and me["email_verified"] is True
    assert [(m["tenant_slug"], m["role"], m["status"]) for m in me["memberships"]] == [
        (tenant["slug"], "viewer", "MEMBERSHIP_STATUS_ACTIVE")
    ]

    events = eventually(
        lambda: requests.get(
            f"{gateway}/api/v1/audit/events", params={"action": "tenant.updated"}, headers=auth(owner)
        ).json()["events"]
    )
    assert events[0]["tenant_id"] == tenant["id"] and events[0]["user_agent"].startswith("python-requests")

    listed = requests.get(
        f"{gateway}/api/v1/tenants", params={"page_size": "100"}, headers=auth(tokens["access_token"])
    )
    assert listed.status_code == 200 and "tenants" in listed.json()
    suspended = requests.post(
        f"{gateway}/api/v1/tenants/{tenant['id']}:suspend", headers=auth(tokens["access_token"]), json={}
    )
    assert suspended.status_code == 200 and suspended.json()["is_active"] is False
    back = requests.post(
        f"{gateway}/api/v1/tenants/{tenant['id']}:reactivate", headers=auth(tokens["access_token"]), json={}
    )
    assert back.json()["is_active"] is True

    jwks = requests.get(f"{gateway}/.well-known/jwks.json").json()
    assert jwks["keys"] and jwks["keys"][0]["kty"] == "OKP"
    info = requests.get(f"{gateway}/api/v1/system/info").json()
    assert info["name"] == "Tenantry" and {s["name"] for s in info["services"]} >= {"tenantry.auth.v1.AuthService"}
    assert all(service["status"] == "SERVING" for service in info["services"])
    assert requests.get(f"{gateway}/health").status_code == 200


def test_refresh_and_logout_over_rest(gateway: str) -> None:
    _, email, _ = new_tenant(gateway)
    tokens = login(gateway, email, "rest-owner-pass")
    renewed = requests.post(f"{gateway}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200
    reused = requests.post(f"{gateway}/api/v1/auth/refresh", json={"refreshToken": tokens["refresh_token"]})
    assert reused.status_code == 401
    fresh = login(gateway, email, "rest-owner-pass")
    assert (
        requests.post(f"{gateway}/api/v1/auth/logout", headers=auth(fresh["access_token"]), json={}).status_code == 200
    )
    refused = eventually(
        lambda: requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(fresh["access_token"])).status_code == 401,
        timeout=1.5,
    )
    assert refused
    gone = requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(fresh["access_token"]))
    assert gone.headers["WWW-Authenticate"].startswith("Bearer")


def test_status_mappings_of_the_real_services(gateway: str, stack: Stack) -> None:
    _, _, owner = new_tenant(gateway)
    assert requests.post(f"{gateway}/api/v1/auth/login", json={"email": "bad"}).status_code == 400
    assert (
        requests.post(f"{gateway}/api/v1/auth/login", json={"email": "a@b.test", "password": "wrong-pass"}).status_code
        == 401
    )
    assert requests.get(f"{gateway}/api/v1/tenants/me").status_code == 401
    assert requests.get(f"{gateway}/api/v1/tenants", headers=auth(owner)).status_code == 403
    member = {"email": f"x-{uuid.uuid4().hex[:6]}@y.test", "role": "viewer"}
    assert requests.post(f"{gateway}/api/v1/tenants/me/admins", headers=auth(owner), json=member).status_code == 200
    # Inviting again replaces the open invitation: the same answer.
    assert requests.post(f"{gateway}/api/v1/tenants/me/admins", headers=auth(owner), json=member).status_code == 200
    with_password = requests.post(
        f"{gateway}/api/v1/tenants/me/admins", headers=auth(owner), json={**member, "password": "chosen-by-admin"}
    )
    assert with_password.status_code == 400
    unknown_role = requests.post(
        f"{gateway}/api/v1/tenants/me/invitations", headers=auth(owner), json={**member, "role": "nope"}
    )
    assert unknown_role.status_code == 404 and unknown_role.json()["message"].startswith("role:")
    accept_garbage = requests.post(f"{gateway}/api/v1/invitations:accept", json={"token": "garbage"})
    assert accept_garbage.status_code == 401
    operator = login(gateway, OPERATOR_EMAIL, OPERATOR_PASSWORD)["access_token"]
    missing = requests.post(f"{gateway}/api/v1/tenants/{uuid.uuid4()}:suspend", headers=auth(operator), json={})
    assert missing.status_code == 404
    assert (
        requests.get(f"{gateway}/api/v1/tenants/me", headers={**auth(owner), "grpc-timeout": "1n"}).status_code == 504
    )


def test_a_forged_tenant_header_is_ignored(gateway: str) -> None:
    mine, _, owner = new_tenant(gateway)
    other, _, _ = new_tenant(gateway)
    reply = requests.get(f"{gateway}/api/v1/tenants/me", headers={**auth(owner), "X-Tenant-Id": other["id"]})
    assert reply.json()["id"] == mine["id"]


def test_cors_only_for_configured_origins(gateway: str) -> None:
    allowed = requests.get(f"{gateway}/.well-known/jwks.json", headers={"Origin": ALLOWED_ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    other = requests.get(f"{gateway}/.well-known/jwks.json", headers={"Origin": "https://evil.test"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = requests.options(
        f"{gateway}/api/v1/tenants/me",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    refused = requests.options(
        f"{gateway}/api/v1/tenants/me",
        headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "PATCH"},
    )
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_request_id_is_returned_and_reaches_the_audit_trail(gateway: str, stack: Stack) -> None:
    _, _, owner = new_tenant(gateway)
    reply = requests.patch(
        f"{gateway}/api/v1/tenants/me",
        params={"update_mask": "name"},
        headers={**auth(owner), "X-Request-Id": "rest-trace-1"},
        json={"name": "Traced"},
    )
    assert reply.headers["X-Request-Id"] == "rest-trace-1"
    assert eventually(
        lambda: stack.sql("SELECT count(*) FROM audit.events WHERE request_id = 'rest-trace-1'")[0][0] == 1
    )


def test_rate_limit_on_login_answers_429_with_retry_after(stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    limited = start_gateway(
        "gateway-limited", {**tenantry_gateway_env(stack), "GATEWAY_RATE_LIMIT_PER_MINUTE": "3"}, tmp_path
    )
    try:
        url = f"http://{limited.address}/api/v1/auth/login"
        codes = [requests.post(url, json={"email": "a@b.test", "password": "whatever1"}).status_code for _ in range(5)]
        assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]
        last = requests.post(url, json={"email": "a@b.test", "password": "whatever1"})
        assert int(last.headers["Retry-After"]) >= 1 and last.json()["code"] == 8
        # Other routes are not limited.
        assert requests.get(f"http://{limited.address}/.well-known/jwks.json").status_code == 200
    finally:
        limited.stop()


def test_an_unknown_kid_makes_the_gateway_refresh_its_keys(gateway: str, stack: Stack) -> None:
    from services.auth.service.signing_keys import new_signing_key

    _, email, owner = new_tenant(gateway)
    assert requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(owner)).status_code == 200  # keys cached
    key = new_signing_key()
    stack.sql(
        "INSERT INTO auth.signing_keys (kid, private_key_pem, public_jwk, created_at) VALUES (%s, %s, %s, now())",
        (key.kid, key.private_key_pem, json.dumps(key.public_jwk)),
    )
    with stack.service_stopped("auth"):
        pass  # restarts with the new key as its signing key
    rotated = eventually(lambda: login(gateway, email, "rest-owner-pass"))["access_token"]
    assert jwt.get_unverified_header(rotated)["kid"] == key.kid
    assert requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(rotated)).status_code == 200
    # Tokens signed with the earlier key still verify.
    assert requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(owner)).status_code == 200


def test_a_stopped_upstream_is_503_and_the_gateway_recovers(gateway: str, stack: Stack) -> None:
    _, _, owner = new_tenant(gateway)
    with stack.service_stopped("tenants"):
        down = requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(owner))
        assert down.status_code == 503 and down.json()["code"] == 14
        health = requests.get(f"{gateway}/health")
        assert health.status_code == 503
        assert any("tenantry.tenants.v1.TenantService" in failing for failing in health.json()["failing"])
    recovered = eventually(
        lambda: requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(owner)).status_code == 200, timeout=10
    )
    assert recovered
    assert eventually(lambda: requests.get(f"{gateway}/health").status_code == 200, timeout=10)


def test_openapi_document_is_valid_and_matches_the_routes(gateway: str) -> None:
    document = requests.get(f"{gateway}/openapi.json").json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    expected = {
        ("/api/v1/auth/login", "POST"),
        ("/api/v1/auth/refresh", "POST"),
        ("/api/v1/auth/logout", "POST"),
        ("/.well-known/jwks.json", "GET"),
        ("/api/v1/tenants", "POST"),
        ("/api/v1/tenants", "GET"),
        ("/api/v1/tenants/me", "GET"),
        ("/api/v1/tenants/me", "PATCH"),
        ("/api/v1/tenants/me/admins", "GET"),
        ("/api/v1/tenants/me/admins", "POST"),
        ("/api/v1/auth/me", "GET"),
        ("/api/v1/auth/tenant:switch", "POST"),
        ("/api/v1/auth/me:setDefaultTenant", "POST"),
        ("/api/v1/invitations:accept", "POST"),
        ("/api/v1/tenants/me/members", "GET"),
        ("/api/v1/tenants/me/members/{user_id}", "PATCH"),
        ("/api/v1/tenants/me/members/{user_id}", "DELETE"),
        ("/api/v1/tenants/me/invitations", "POST"),
        ("/api/v1/tenants/me/invitations", "GET"),
        ("/api/v1/tenants/me/invitations/{invitation_id}", "DELETE"),
        ("/api/v1/tenants/me/invitations/{invitation_id}:resend", "POST"),
        ("/api/v1/tenants/me/roles", "GET"),
        ("/api/v1/tenants/me/roles", "POST"),
        ("/api/v1/tenants/me/roles/{name}", "PATCH"),
        ("/api/v1/tenants/me/roles/{name}", "DELETE"),
        ("/api/v1/permissions", "GET"),
        ("/api/v1/auth/register", "POST"),
        ("/api/v1/auth/email:verify", "POST"),
        ("/api/v1/auth/email:resend", "POST"),
        ("/api/v1/auth/password:forgot", "POST"),
        ("/api/v1/auth/password:reset", "POST"),
        ("/api/v1/auth/password:change", "POST"),
        ("/api/v1/auth/sessions", "GET"),
        ("/api/v1/auth/sessions/{session_id}", "DELETE"),
        ("/api/v1/auth/sessions:revokeOthers", "POST"),
        ("/api/v1/auth/me/events", "GET"),
        ("/api/v1/tenants/me/members/{user_id}:revokeSessions", "POST"),
        ("/api/v1/tenants/me/emails", "GET"),
        ("/api/v1/emails", "GET"),
        ("/api/v1/tenants/{tenant_id}:suspend", "POST"),
        ("/api/v1/tenants/{tenant_id}:reactivate", "POST"),
        ("/api/v1/audit/events", "GET"),
        ("/api/v1/audit/verification", "GET"),
        ("/api/v1/audit/events:batch", "POST"),
        ("/api/v1/api-keys", "GET"),
        ("/api/v1/api-keys", "POST"),
        ("/api/v1/api-keys/{id}", "GET"),
        ("/api/v1/api-keys/{id}:revoke", "POST"),
        ("/api/v1/api-keys:exchange", "POST"),
        ("/api/v1/audit/events:export", "GET"),
        ("/api/v1/audit/retention", "GET"),
        ("/api/v1/audit/retention", "PATCH"),
        ("/api/v1/system/settings", "GET"),
        ("/api/v1/system/settings", "POST"),
        ("/api/v1/system/settings/{key}", "GET"),
        ("/api/v1/system/settings/{key}", "PATCH"),
        ("/api/v1/system/settings/{key}", "DELETE"),
        ("/api/v1/system/info", "GET"),
        ("/health", "GET"),
        ("/api/v1/service-accounts", "POST"),
        ("/api/v1/service-accounts", "GET"),
        ("/api/v1/service-accounts/{id}", "GET"),
        ("/api/v1/service-accounts/{id}", "DELETE"),
        ("/api/v1/service-accounts/{id}/secrets", "POST"),
        ("/api/v1/service-accounts/{id}/secrets:rotate", "POST"),
        ("/api/v1/service-accounts/{id}/keys", "POST"),
        ("/api/v1/service-accounts/{id}/credentials/{credential_id}", "DELETE"),
        ("/api/v1/oauth/token", "POST"),
    }
    assert documented == expected
    # Every documented route answers something other than 404/405 (it exists).
    for path, method in documented:
        concrete = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path)
        status = requests.request(method, f"{gateway}{concrete}", json={} if method != "GET" else None).status_code
        assert status not in (404, 405) or "{" in path, (path, method, status)
    login_op = document["paths"]["/api/v1/auth/login"]["post"]
    assert login_op["security"] == [] and "Exchanges an email" in login_op["description"]
    assert document["paths"]["/api/v1/tenants/me"]["get"]["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]


def test_swagger_ui_is_served_from_installed_assets(gateway: str) -> None:
    page = requests.get(f"{gateway}/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text and "/openapi.json" in page.text
    assert "https://" not in page.text and "http://" not in page.text  # no CDN
    bundle = requests.get(f"{gateway}/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert requests.get(f"{gateway}/docs/../../etc/passwd").status_code == 404
    assert requests.post(f"{gateway}/health").status_code == 405


def test_a_client_cannot_choose_its_address_without_a_trusted_proxy(gateway: str, stack: Stack) -> None:
    _, _, owner = new_tenant(gateway)
    requests.patch(
        f"{gateway}/api/v1/tenants/me",
        params={"update_mask": "name"},
        headers={**auth(owner), "X-Forwarded-For": "203.0.113.9", "X-Request-Id": "spoofed-address-1"},
        json={"name": "Spoof"},
    )
    stored = eventually(
        lambda: stack.sql("SELECT host(ip_address) FROM audit.events WHERE request_id = 'spoofed-address-1'")
    )
    assert stored[0][0] == "127.0.0.1"
