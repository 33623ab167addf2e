"""POST /api/v1/oauth/token through the gateway: form bodies, HTTP Basic, RFC 6749 §5.2 errors."""

from __future__ import annotations

import uuid

import requests

from tests.gateway.test_rest_api import auth
from tests.stack import Stack

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def new_client(gateway: str, stack: Stack) -> tuple[str, str, str]:
    """A tenant's account holding tenant.read: (client id, secret, the owner's token)."""
    owner = stack.create_tenant("oauth")
    account = requests.post(
        f"{gateway}/api/v1/service-accounts",
        headers=auth(owner.owner_token),
        json={"name": f"robot-{uuid.uuid4().hex[:6]}", "permissions": ["tenant.read"]},
    )
    assert account.status_code == 200, account.text
    secret = requests.post(
        f"{gateway}/api/v1/service-accounts/{account.json()['id']}/secrets", headers=auth(owner.owner_token), json={}
    )
    assert secret.status_code == 200, secret.text
    assert secret.headers["Cache-Control"] == "no-store"
    return secret.json()["client_id"], secret.json()["client_secret"], owner.owner_token


def test_client_secret_basic_and_post_in_a_form_body(gateway: str, stack: Stack) -> None:
    client_id, secret, _ = new_client(gateway, stack)
    by_basic = requests.post(
        f"{gateway}/api/v1/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    by_post = requests.post(
        f"{gateway}/api/v1/oauth/token",
        data=f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}",
        headers=FORM,
    )
    for reply in (by_basic, by_post):
        assert reply.status_code == 200, reply.text
        assert reply.headers["Cache-Control"] == "no-store" and reply.headers["Pragma"] == "no-cache"
        body = reply.json()
        assert body["token_type"] == "Bearer" and isinstance(body["expires_in"], int) and "scope" not in body
        tenant = requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(body["access_token"]))
        assert tenant.status_code == 200, tenant.text
    scoped = requests.post(
        f"{gateway}/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "scope": "tenant.read"},
        auth=(client_id, secret),
    )
    assert scoped.json()["scope"] == "tenant.read"


def test_errors_are_rfc_6749_error_bodies(gateway: str, stack: Stack) -> None:
    client_id, secret, _ = new_client(gateway, stack)
    wrong = requests.post(
        f"{gateway}/api/v1/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "tsa_wrong")
    )
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert wrong.json()["error"] == "invalid_client" and wrong.json()["error_description"]
    missing = requests.post(f"{gateway}/api/v1/oauth/token", data={"grant_type": "client_credentials"})
    assert missing.status_code == 401 and missing.json()["error"] == "invalid_client"
    grant = requests.post(f"{gateway}/api/v1/oauth/token", data={"grant_type": "password"}, auth=(client_id, secret))
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    scope = requests.post(
        f"{gateway}/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "scope": "roles.manage"},
        auth=(client_id, secret),
    )
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"


def test_malformed_form_bodies_are_refused_naming_the_problem(gateway: str, stack: Stack) -> None:
    url = f"{gateway}/api/v1/oauth/token"
    for body, problem in [
        ("grant_type=client_credentials&grant_type=client_credentials", "more than once"),
        ("grant_type=client_credentials&nonsense=1", "no such field"),
        ("grant_type=%FF", "not valid form data"),
    ]:
        reply = requests.post(url, data=body, headers=FORM)
        assert reply.status_code == 400 and problem in reply.json()["message"], (body, reply.text)
    # JSON labelled as a form (curl -d does so) is still JSON.
    labelled = requests.post(
        f"{gateway}/api/v1/auth/login", data='{"email": "nobody@x.test", "password": "x"}', headers=FORM
    )
    assert labelled.status_code == 401, labelled.text
    # A form for a method taking JSON is read as its fields.
    login_form = requests.post(f"{gateway}/api/v1/auth/login", data="email=a@b.test&password=x", headers=FORM)
    assert login_form.status_code in (400, 401)
