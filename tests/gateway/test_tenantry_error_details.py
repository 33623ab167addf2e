"""Tenantry's own refusals reach REST clients with their google.rpc details: the edge's and the services'."""

from __future__ import annotations

import requests

from tests.gateway.test_rest_api import auth, new_tenant

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def detail(body: dict, type_url: str) -> dict:  # type: ignore[type-arg]
    found = [item for item in body["details"] if item["@type"] == type_url]
    assert len(found) == 1, body
    return found[0]  # type: ignore[no-any-return]


def test_a_missing_token_refused_at_the_edge_says_token_missing(gateway: str) -> None:
    reply = requests.get(f"{gateway}/api/v1/tenants/me")
    assert reply.status_code == 401
    info = detail(reply.json(), ERROR_INFO)
    assert (info["reason"], info["domain"]) == ("TOKEN_MISSING", "tenantry.dev")


def test_a_forged_token_refused_at_the_edge_says_token_invalid(gateway: str) -> None:
    _tenant, _email, token = new_tenant(gateway)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    reply = requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(forged))
    assert reply.status_code == 401
    assert detail(reply.json(), ERROR_INFO)["reason"] == "TOKEN_INVALID"


def test_a_services_invalid_argument_names_the_field_over_rest(gateway: str) -> None:
    _tenant, _email, owner = new_tenant(gateway)
    reply = requests.post(
        f"{gateway}/api/v1/tenants/me/invitations", headers=auth(owner), json={"email": "not an email", "role": "admin"}
    )
    assert reply.status_code == 400, reply.text
    violations = detail(reply.json(), BAD_REQUEST)["field_violations"]
    assert [violation["field"] for violation in violations] == ["email"]
