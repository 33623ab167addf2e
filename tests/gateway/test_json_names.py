"""GATEWAY_JSON_NAMES=json: responses by each field's json_name; requests take both names either way."""

from __future__ import annotations

import json

import requests

from gateway.transcoding import to_json
from tests.gateway.test_wire_properties import CONTRACTS


def test_responses_use_json_names_and_a_contract_s_own(echo_json_names_gateway: str) -> None:
    reply = requests.get(f"{echo_json_names_gateway}/v1/echo/a", params={"page_token": "p", "display_name": "D"})
    echoed = reply.json()["request"]
    assert echoed["pageToken"] == "p" and echoed["displayLabel"] == "D"
    assert "page_token" not in echoed and "display_name" not in echoed and "displayName" not in echoed


def test_requests_take_proto_names_and_json_names_in_either_mode(
    echo_gateway: str, echo_json_names_gateway: str
) -> None:
    for body in ({"display_name": "D", "page_token": "p"}, {"displayLabel": "D", "pageToken": "p"}):
        proto = requests.post(f"{echo_gateway}/v1/echo", json=body).json()["request"]
        assert (proto["display_name"], proto["page_token"]) == ("D", "p")
        named = requests.post(f"{echo_json_names_gateway}/v1/echo", json=body).json()["request"]
        assert (named["displayLabel"], named["pageToken"]) == ("D", "p")
    query = requests.get(f"{echo_gateway}/v1/echo/a", params={"displayLabel": "Q"}).json()["request"]
    assert query["display_name"] == "Q"


def test_the_default_keeps_proto_names(echo_gateway: str) -> None:
    echoed = requests.get(f"{echo_gateway}/v1/echo/a", params={"display_name": "D"}).json()["request"]
    assert echoed["display_name"] == "D" and "displayLabel" not in echoed


def test_stream_lines_use_json_names_too(echo_json_names_gateway: str) -> None:
    reply = requests.get(f"{echo_json_names_gateway}/v1/stream/1", params={"page_token": "x"})
    assert "pageToken" in json.loads(reply.text.splitlines()[0])["request"]


def test_response_body_is_picked_by_the_name_the_document_uses() -> None:
    request_class = next(b.rpc.request_class for b in CONTRACTS.bindings if b.rpc.method.name == "Echo")
    message = request_class(display_name="D", page_token="p")
    assert to_json(message, "display_name", json_names=True) == "D"
    assert to_json(message, "display_name") == "D"
    assert to_json(message, json_names=True)["displayLabel"] == "D"
