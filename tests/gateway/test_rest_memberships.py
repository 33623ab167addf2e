"""Members, invitations, roles and a person's tenants over REST, through the gateway."""

from __future__ import annotations

import uuid

import jwt
import requests

from tests.gateway.test_rest_api import auth, invite_and_join, login, new_tenant
from tests.stack import Stack


def test_members_roles_and_tenants_of_a_person_over_rest(gateway: str, stack: Stack) -> None:
    tenant, _, owner = new_tenant(gateway)
    catalogue = requests.get(f"{gateway}/api/v1/permissions", headers=auth(owner)).json()
    assert "members.invite" in {p["name"] for p in catalogue["permissions"]}
    role = {"name": "field_worker", "description": "Works tickets", "permissions": ["app.tickets.write"]}
    created = requests.post(f"{gateway}/api/v1/tenants/me/roles", headers=auth(owner), json=role)
    assert created.status_code == 200 and created.json()["built_in"] is False
    email = f"worker-{uuid.uuid4().hex[:6]}@x.test"
    worker = invite_and_join(gateway, stack, owner, email, "field_worker")
    assert jwt.decode(worker["access_token"], options={"verify_signature": False})["perms"] == ["app.tickets.write"]
    assert requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(worker["access_token"])).status_code == 403

    widened = requests.patch(
        f"{gateway}/api/v1/tenants/me/roles/field_worker",
        headers=auth(owner),
        json={"permissions": ["app.tickets.write", "tenant.read"]},
    )
    assert widened.status_code == 200 and widened.json()["permissions"] == ["app.tickets.write", "tenant.read"]
    in_use = requests.delete(f"{gateway}/api/v1/tenants/me/roles/field_worker", headers=auth(owner))
    assert in_use.status_code == 400 and in_use.json()["code"] == 9  # FAILED_PRECONDITION
    builtin = requests.patch(f"{gateway}/api/v1/tenants/me/roles/admin", headers=auth(owner), json={"description": "x"})
    assert builtin.status_code == 403

    user_id = jwt.decode(worker["access_token"], options={"verify_signature": False})["sub"]
    patched = requests.patch(
        f"{gateway}/api/v1/tenants/me/members/{user_id}", headers=auth(owner), json={"role": "viewer"}
    )
    assert patched.status_code == 200 and patched.json()["role"] == "viewer"
    suspended = requests.patch(
        f"{gateway}/api/v1/tenants/me/members/{user_id}",
        headers=auth(owner),
        json={"status": "MEMBERSHIP_STATUS_SUSPENDED"},
    )
    assert suspended.json()["status"] == "MEMBERSHIP_STATUS_SUSPENDED"
    assert requests.delete(f"{gateway}/api/v1/tenants/me/members/{user_id}", headers=auth(owner)).status_code == 200
    assert requests.delete(f"{gateway}/api/v1/tenants/me/roles/field_worker", headers=auth(owner)).status_code == 200

    # One person, two tenants: switch and choose the default over REST.
    other, other_email, _ = new_tenant(gateway)
    # Their account was unverified (made by CreateTenant): accepting sets a new password.
    invite_and_join(gateway, stack, owner, other_email, "viewer")
    person = login(gateway, other_email, "member-pass-1")
    assert jwt.decode(person["access_token"], options={"verify_signature": False})["tid"] == tenant["id"]
    switched = requests.post(
        f"{gateway}/api/v1/auth/tenant:switch",
        headers=auth(person["access_token"]),
        json={"tenant_slug": other["slug"]},
    )
    assert switched.status_code == 200 and switched.headers.get("Cache-Control", "no-store") == "no-store"
    assert jwt.decode(switched.json()["access_token"], options={"verify_signature": False})["tid"] == other["id"]
    chosen = requests.post(
        f"{gateway}/api/v1/auth/me:setDefaultTenant",
        headers=auth(person["access_token"]),
        json={"tenant_slug": other["slug"]},
    )
    assert chosen.status_code == 200
    assert [m["tenant_slug"] for m in chosen.json()["memberships"] if m.get("is_default")] == [other["slug"]]
    again = login(gateway, other_email, "member-pass-1")
    assert jwt.decode(again["access_token"], options={"verify_signature": False})["tid"] == other["id"]
