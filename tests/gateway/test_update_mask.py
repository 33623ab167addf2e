"""update_mask: proto names or lowerCamelCase in the query, checked against the updated message;
built from the body of a PATCH or PUT that gives none (grpc-gateway's FieldMaskFromRequestBody)."""

from __future__ import annotations

import pytest
import requests


def _mask(reply: requests.Response) -> list[str]:
    """The update_mask's paths as the upstream received them."""
    assert reply.status_code == 200, reply.text
    entry = next((entry for entry in reply.json()["metadata"] if entry.startswith("update_mask=")), "update_mask=")
    return entry.removeprefix("update_mask=").split(",") if entry != "update_mask=" else []


@pytest.mark.parametrize("written", ["display_name,nested.inner.b", "displayName,nested.inner.b"])
def test_query_mask_takes_proto_and_camel_case_names(echo_gateway: str, written: str) -> None:
    reply = requests.patch(f"{echo_gateway}/v1/shelves/s1", params={"update_mask": written}, json={})
    assert _mask(reply) == ["display_name", "nested.inner.b"]
    camel_parameter = requests.patch(f"{echo_gateway}/v1/shelves/s1", params={"updateMask": written}, json={})
    assert _mask(camel_parameter) == ["display_name", "nested.inner.b"]


def test_query_mask_paths_are_kept_in_order_each_once(echo_gateway: str) -> None:
    reply = requests.patch(
        f"{echo_gateway}/v1/shelves/s1", params={"update_mask": "tags, displayName,display_name"}, json={}
    )
    assert _mask(reply) == ["tags", "display_name"]


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("title", "'title' names no field of tenantry.testing.echo.v1.Shelf"),
        ("display_name,nope", "'nope' names no field"),
        ("nested.zz", "'nested.zz' names no field of tenantry.testing.echo.v1.Nested"),
        ("tags.x", "'tags' has no fields to name"),
        ("settings.theme", "'settings' has no fields to name"),
        ("labels.k", "'labels' has no fields to name"),
        ("tags,,labels", "an empty path"),
        ("display-name", "is not a field path"),
        ("nested.", "is not a field path"),
    ],
)
def test_a_query_mask_naming_no_field_is_400_naming_it(echo_gateway: str, written: str, fragment: str) -> None:
    reply = requests.patch(f"{echo_gateway}/v1/shelves/s1", params={"update_mask": written}, json={})
    assert reply.status_code == 400 and reply.json()["code"] == 3
    assert "update_mask" in reply.json()["message"] and fragment in reply.json()["message"]


def test_a_get_checks_update_mask_against_the_request(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/echo/a", params={"update_mask": "pageToken,book.title,*"})
    assert _mask(reply) == ["page_token", "book.title", "*"]
    assert requests.get(f"{echo_gateway}/v1/echo/a", params={"update_mask": "shelf.zz"}).status_code == 400


def test_other_masks_are_normalised_but_not_checked(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/echo/a", params={"mask": "display_name,someField.otherThing"})
    assert reply.json()["request"]["mask"] == "displayName,someField.otherThing"


def test_patch_without_a_mask_gets_one_from_the_body(echo_gateway: str) -> None:
    body = {
        "displayName": "Fiction",
        "nested": {"a": "x", "inner": {"labels": ["l"]}},
        "tags": ["t"],
        "labels": {"k": "v"},
        "settings": {"theme": {"dark": True}},
    }
    reply = requests.patch(f"{echo_gateway}/v1/shelves/s1", json=body)
    assert _mask(reply) == ["display_name", "labels", "nested.a", "nested.inner.labels", "settings", "tags"]
    # The path variable's field is the resource's name, not a change.
    assert reply.json()["request"]["shelf"]["name"] == "shelves/s1"


def test_put_without_a_mask_gets_one_from_the_body(echo_gateway: str) -> None:
    reply = requests.put(f"{echo_gateway}/v1/shelves/s1", json={"display_name": "F", "nested": {}})
    assert _mask(reply) == ["display_name", "nested"]


def test_a_given_mask_is_kept_and_an_empty_body_gives_none(echo_gateway: str) -> None:
    given = requests.patch(f"{echo_gateway}/v1/shelves/s1", params={"update_mask": "tags"}, json={"nested": {"a": "x"}})
    assert _mask(given) == ["tags"]
    assert _mask(requests.patch(f"{echo_gateway}/v1/shelves/s1", json={})) == []


def test_body_star_patch_masks_the_request_fields_but_the_path_and_the_mask(echo_gateway: str) -> None:
    reply = requests.patch(
        f"{echo_gateway}/v1/echo-requests/r1", json={"id": "ignored", "count": 3, "book": {"title": "T"}}
    )
    assert _mask(reply) == ["book.title", "count"]
    given = requests.patch(f"{echo_gateway}/v1/echo-requests/r1", json={"count": 3, "updateMask": "flag"})
    assert _mask(given) == ["flag"]


def test_a_body_null_is_a_path_too(echo_gateway: str) -> None:
    assert _mask(requests.patch(f"{echo_gateway}/v1/shelves/s1", json={"nested": None})) == ["nested"]


def test_tenantry_patch_without_update_mask_changes_what_the_body_sets(gateway: str) -> None:
    from tests.gateway.test_rest_api import auth, new_tenant

    tenant, _, owner = new_tenant(gateway)
    # UpdateMyTenant requires update_mask; the gateway builds ["name"] from the body.
    patched = requests.patch(f"{gateway}/api/v1/tenants/me", headers=auth(owner), json={"name": "From Body"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "From Body" and patched.json()["settings"] == tenant["settings"]
    # Proto names in the query reach the service as it expects them.
    named = requests.patch(
        f"{gateway}/api/v1/tenants/me",
        params={"update_mask": "settings"},
        headers=auth(owner),
        json={"name": "Ignored", "settings": {"theme": "light"}},
    )
    assert named.status_code == 200 and named.json()["name"] == "From Body"
    assert named.json()["settings"] == {"theme": "light"}
    unknown = requests.patch(
        f"{gateway}/api/v1/tenants/me", params={"update_mask": "colour"}, headers=auth(owner), json={}
    )
    assert unknown.status_code == 400 and "'colour' names no field of tenantry.tenants.v1.Tenant" in unknown.text
