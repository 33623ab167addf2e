"""Properties of the transcoder over generated paths and bodies, against the real contracts.

Whatever a client sends, the transcoder answers with a message or a 400 naming
what is wrong; it never raises anything else (which the gateway would answer 500).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.descriptors import Binding, Contracts
from gateway.routes import Matched, RouteTable
from gateway.status import GatewayError
from gateway.transcoding import MAX_JSON_DEPTH, build_request, json_depth

CONTRACTS = Contracts(Path(__file__).resolve().parents[2] / "gen" / "tenantry.binpb")
ROUTES = RouteTable(CONTRACTS.bindings)
BODY_BINDINGS = [binding for binding in CONTRACTS.bindings if binding.body]
PROPERTY = settings(max_examples=300, deadline=None)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


def _field_names(binding: Binding) -> list[str]:
    fields = binding.rpc.request_class.DESCRIPTOR.fields
    return [field.name for field in fields] + [field.json_name for field in fields]


@st.composite
def request_bodies(draw: st.DrawFn) -> tuple[Binding, dict[str, Any]]:
    """Bodies that use the request's own field names, with values of any JSON type."""
    binding = draw(st.sampled_from(BODY_BINDINGS))
    known = _field_names(binding)
    names = (st.sampled_from(known) | st.text(max_size=6)) if known else st.text(max_size=6)
    return binding, draw(st.dictionaries(names, json_values, max_size=5))


def _transcode(binding: Binding, body: bytes, path_values: dict[tuple[str, ...], str] | None = None) -> Any:
    values = path_values or {variable.field_path: "x" for variable in binding.template.variables}
    return build_request(binding, values, [], body)


@PROPERTY
@given(request_bodies())
def test_any_json_body_becomes_a_message_or_a_400(case: tuple[Binding, dict[str, Any]]) -> None:
    binding, document = case
    try:
        message = _transcode(binding, json.dumps(document).encode())
    except GatewayError as error:
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.http_status == 400
        return
    assert isinstance(message, binding.rpc.request_class)


@PROPERTY
@given(request_bodies())
def test_a_boolean_never_lands_in_an_enum_string_or_number_field(case: tuple[Binding, dict[str, Any]]) -> None:
    binding, document = case
    descriptor = binding.rpc.request_class.DESCRIPTOR
    for field in descriptor.fields:
        if field.type not in (field.TYPE_BOOL, field.TYPE_MESSAGE) and not field.is_repeated:
            try:
                _transcode(binding, json.dumps({**document, field.name: True}).encode())
            except GatewayError as error:
                assert error.http_status == 400
            else:
                raise AssertionError(f"{descriptor.full_name}.{field.name} took a boolean")


@PROPERTY
@given(request_bodies(), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]))
def test_a_non_finite_number_is_never_transcoded(case: tuple[Binding, dict[str, Any]], literal: str) -> None:
    binding, document = case
    rest = json.dumps({name: value for name, value in document.items() if name != "settings"})
    body = ('{"settings": {"n": ' + literal + "}" + (", " + rest[1:] if rest != "{}" else "}")).encode()
    try:
        message = _transcode(binding, body)
    except GatewayError as error:
        assert error.http_status == 400
        return
    raise AssertionError(f"transcoded {message}")


@PROPERTY
@given(request_bodies(), st.characters(categories=["Cs"]), st.text(max_size=5))
def test_a_lone_surrogate_escape_is_a_400_never_an_upstream_failure(
    case: tuple[Binding, dict[str, Any]], surrogate: str, text: str
) -> None:
    binding, document = case
    for field in binding.rpc.request_class.DESCRIPTOR.fields:
        if field.type == field.TYPE_STRING and not field.is_repeated:
            body = json.dumps({**document, field.name: text + surrogate})  # ensure_ascii: \udxxx escapes
            try:
                _transcode(binding, body.encode())
            except GatewayError as error:
                assert error.http_status == 400
            else:
                raise AssertionError(f"{field.full_name} took a lone surrogate")


@PROPERTY
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_a_message_or_a_400(body: bytes) -> None:
    for binding in BODY_BINDINGS:
        try:
            _transcode(binding, body)
        except GatewayError as error:
            assert error.http_status == 400


@PROPERTY
@given(json_values)
def test_the_depth_count_matches_the_parsed_depth(value: Any) -> None:
    text = json.dumps(value)
    assert json_depth(text) == _depth(value)


@PROPERTY
@given(st.integers(MAX_JSON_DEPTH + 1, 100_000), st.sampled_from(["[", '{"a":']))
def test_a_body_deeper_than_the_bound_is_a_400_without_parsing(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    body = ('{"settings":' + opener * depth + "1" + closer * depth + "}").encode()
    try:
        _transcode(BODY_BINDINGS[0], body)
    except GatewayError as error:
        assert error.http_status == 400 and "deeper" in error.message
    else:
        raise AssertionError("a body past the depth bound was parsed")


@PROPERTY
@given(st.text(max_size=40))
def test_any_path_value_routes_to_a_message_or_a_400(raw: str) -> None:
    found = ROUTES.match("POST", f"/api/v1/tenants/{quote(raw, safe='')}:suspend")
    if not isinstance(found, Matched):
        return
    try:
        message = build_request(found.binding, found.path_values, [], b"{}")
    except GatewayError as error:
        assert error.http_status == 400
        assert any(ord(character) < 0x20 or ord(character) == 0x7F for character in raw)
        return
    assert message.tenant_id == raw
