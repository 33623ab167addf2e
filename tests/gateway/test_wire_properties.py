"""Properties of the query's map entries, update masks and percent-encoded paths, over the echo contract.

Whatever a client writes, the transcoder answers with a message or a 400 naming what is wrong,
never anything else (which the gateway would answer 500); and what it accepts means what it says.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.descriptors import Binding, Contracts
from gateway.routes import Matched, RouteTable
from gateway.status import GatewayError
from gateway.transcoding import build_request
from tests.gateway.echo_server import build_descriptor_set

CONTRACTS = Contracts(build_descriptor_set(Path(tempfile.mkdtemp()) / "echo.binpb"))
ROUTES = RouteTable(CONTRACTS.bindings)
PROPERTY = settings(max_examples=300, deadline=None)
# Text with no control characters (a path variable refuses those, by design) and no surrogates.
path_text = st.text(st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=20)
INT32 = (-(2**31), 2**31 - 1)


def _route(method: str, raw_path: str) -> Matched:
    found = ROUTES.match(method, raw_path)
    assert isinstance(found, Matched), raw_path
    return found


def _echo(query: list[tuple[str, str]]) -> Any:
    found = _route("GET", "/v1/echo/a")
    return build_request(found.binding, found.path_values, query, b"")


def _refused(call: Any, naming: str) -> bool:
    """True when the call is refused with a 400 naming `naming`; any other exception fails the test."""
    try:
        call()
    except GatewayError as error:
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.http_status == 400
        assert naming in error.message, (naming, error.message)
        return True
    return False


@PROPERTY
@given(st.text(max_size=20), st.text(max_size=20))
def test_any_string_key_and_value_land_in_the_map_as_written(key: str, value: str) -> None:
    assert dict(_echo([(f"labels[{key}]", value)]).labels) == {key: value}


@PROPERTY
@given(st.text(max_size=12), st.text(max_size=8))
def test_any_integer_map_key_is_taken_in_range_or_refused_naming_the_parameter(key: str, value: str) -> None:
    name = f"sizes[{key}]"
    try:
        message = _echo([(name, value)])
    except GatewayError as error:
        assert error.http_status == 400 and "sizes" in error.message
        return
    assert INT32[0] <= int(key) <= INT32[1] and dict(message.sizes) == {int(key): int(value)}


@PROPERTY
@given(st.integers(*INT32), st.integers(-(2**63), 2**63 - 1))
def test_integer_keys_and_values_round_trip(key: int, value: int) -> None:
    assert dict(_echo([(f"sizes[{key}]", str(value))]).sizes) == {key: value}


@PROPERTY
@given(st.text(max_size=30))
def test_any_query_name_is_a_message_or_a_400(name: str) -> None:
    try:
        _echo([(name, "1")])
    except GatewayError as error:
        assert error.http_status == 400


@PROPERTY
@given(st.lists(st.sampled_from(["display_name", "displayName", "nested", "nested.a", "nested.inner.b", "tags"])))
def test_update_masks_normalise_to_proto_names(paths: list[str]) -> None:
    found = _route("PATCH", "/v1/shelves/s1")
    message = build_request(found.binding, found.path_values, [("update_mask", ",".join(paths))], b"{}")
    normalised = [path.replace("displayName", "display_name") for path in paths]
    assert list(message.update_mask.paths) == list(dict.fromkeys(normalised))


@PROPERTY
@given(st.text(max_size=30))
def test_any_update_mask_text_is_a_mask_or_a_400_naming_the_parameter(text: str) -> None:
    found = _route("PATCH", "/v1/shelves/s1")
    query = [("update_mask", text)]
    _refused(lambda: build_request(found.binding, found.path_values, query, b"{}"), "update_mask")


@PROPERTY
@given(path_text)
def test_a_single_segment_variable_decodes_everything_slashes_included(value: str) -> None:
    found = _route("GET", f"/v1/echo/{quote(value, safe='')}")
    assert found.path_values == {("id",): value}


@PROPERTY
@given(st.lists(path_text.filter(lambda s: "%" not in s), min_size=1, max_size=4))
def test_a_multi_segment_variable_keeps_encoded_slashes_encoded(segments: list[str]) -> None:
    # RFC 6570 reserved expansion, as http.proto asks: "/" separates, "%2F" inside a segment stays.
    raw = "/".join(quote(segment, safe="") for segment in segments)
    found = _route("GET", f"/v1/files/{raw}")
    assert found.path_values == {("name",): "/".join(segment.replace("/", "%2F") for segment in segments)}


@PROPERTY
@given(path_text.filter(lambda s: "/" not in s), path_text.filter(lambda s: "/" not in s))
def test_a_pattern_variable_sent_as_one_encoded_parameter_matches_decoded(shelf: str, book: str) -> None:
    # What an OpenAPI client sends for {book.name=shelves/*/books/*}: the whole name, slashes encoded.
    name = f"shelves/{shelf}/books/{book}"
    found = _route("GET", "/v1/" + quote(name, safe=""))
    assert found.path_values == {("book", "name"): name}
    message = build_request(found.binding, found.path_values, [], b"")
    assert message.book.name == name


def test_an_encoded_slash_outside_a_multi_segment_variable_is_no_separator() -> None:
    assert ROUTES.match("GET", "/v1%2Fecho/a") is None
    assert ROUTES.match("GET", "/v1/items/a%2Fb/view") is not None  # single segment: the value "a/b"
    assert _route("GET", "/v1/items/a%2Fb/view").path_values == {("id",): "a/b"}
    # "shelves%2Fs1" is no "shelves/" as written; read with every %2F as "/", it is:
    assert _route("GET", "/v1/shelves%2Fs1/books/b2").path_values == {("book", "name"): "shelves/s1/books/b2"}
    # but then every %2F is a "/", and "b/2" is no single segment: written that way, the name has no match.
    assert ROUTES.match("GET", "/v1/shelves%2Fs1/books/b%2F2") is None


def test_update_mask_of_a_binding_without_body_is_relative_to_the_request() -> None:
    binding: Binding = _route("GET", "/v1/echo/a").binding
    assert binding.body == ""
    message = build_request(binding, {("id",): "a"}, [("update_mask", "shelf.displayName")], b"")
    assert list(message.update_mask.paths) == ["shelf.display_name"]
