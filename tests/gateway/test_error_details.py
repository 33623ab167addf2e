"""An upstream's google.rpc.Status (grpc-status-details-bin) reaches REST clients as `details`."""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import requests
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.error_details import DETAILS_TRAILER, DetailDecoder
from tests.gateway.test_streaming import events
from tests.gateway.test_wire_properties import CONTRACTS

BAD_REQUEST = {
    "@type": "type.googleapis.com/google.rpc.BadRequest",
    "field_violations": [
        {"field": "book.title", "description": "must not be empty"},
        {"field": "book.pages", "description": "must be positive"},
    ],
}
ERROR_INFO = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "BOOK_INVALID",
    "domain": "echo.tenantry.test",
    "metadata": {"shelf": "s1"},
}
# A type of the loaded contracts only (not compiled into the gateway): decoded by its descriptor.
BOOK = {"@type": "type.googleapis.com/tenantry.testing.echo.v1.Book", "name": "shelves/s1/books/b1"}
# A type nobody loaded: passed on as its bytes.
UNKNOWN = {"@type": "type.googleapis.com/acme.v1.Unknown", "value": base64.b64encode(b"\x08\x2a").decode()}
DETAILS = [BAD_REQUEST, ERROR_INFO, BOOK, UNKNOWN]


def test_unary_error_carries_the_details_with_their_types(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/fail-rich/3")
    assert reply.status_code == 400
    assert reply.json() == {"code": 3, "message": "the book is not valid", "details": DETAILS}


def test_status_code_maps_to_http_as_before_with_details(echo_gateway: str) -> None:
    for code, http in ((grpc.StatusCode.FAILED_PRECONDITION, 400), (grpc.StatusCode.PERMISSION_DENIED, 403)):
        reply = requests.get(f"{echo_gateway}/v1/fail-rich/{code.value[0]}")
        assert reply.status_code == http and reply.json()["details"][1]["reason"] == "BOOK_INVALID"


def test_retry_info_sets_retry_after_rounded_up(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/fail-rich/8", params={"wait": "2.5s"})
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "3"
    assert reply.json()["details"][3] == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retry_delay": "2.500s"}
    unavailable = requests.get(f"{echo_gateway}/v1/fail-rich/14", params={"wait": "4s"})
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "4"
    # UNAVAILABLE's message stays the gateway's own; the details are the upstream's.
    assert unavailable.json()["message"] == "the service is unavailable; retry later"
    assert unavailable.json()["details"][0] == BAD_REQUEST


def test_the_retry_after_trailer_still_sets_retry_after(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/fail-rich/8", params={"text": "trailer"})
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "7"
    assert reply.json() == {"code": 8, "message": "busy", "details": []}


def test_a_garbled_or_contradicting_status_is_dropped_not_a_500(echo_gateway: str) -> None:
    garbled = requests.get(f"{echo_gateway}/v1/fail-rich/3", params={"text": "garbage"})
    assert garbled.status_code == 400 and garbled.json() == {"code": 3, "message": "garbled details", "details": []}
    mismatch = requests.get(f"{echo_gateway}/v1/fail-rich/3", params={"text": "mismatch"})
    assert mismatch.status_code == 400 and mismatch.json()["details"] == []


def test_a_stream_ends_with_the_details_on_its_error_line(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/stream/2", params={"name": "rich"})
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert [line["request"]["id"] for line in lines[:2]] == ["0", "1"]
    assert lines[2] == {"error": {"code": 3, "message": "the book is not valid", "details": DETAILS}}


def test_an_event_stream_ends_with_the_details_in_its_error_event(echo_gateway: str) -> None:
    _, received = events(f"{echo_gateway}/v1/stream/1?name=rich")
    assert [event.type for event in received] == ["message", "error"]
    assert json.loads(received[1].data) == {"code": 3, "message": "the book is not valid", "details": DETAILS}


def test_a_stream_failing_at_once_answers_the_details_as_an_http_error(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/stream/0", params={"name": "rich", "wait": "1s"})
    assert reply.status_code == 400 and reply.headers["Retry-After"] == "1"
    assert reply.json()["details"][:2] == [BAD_REQUEST, ERROR_INFO]


def test_details_follow_the_json_names_setting(echo_json_names_gateway: str) -> None:
    reply = requests.get(f"{echo_json_names_gateway}/v1/fail-rich/3")
    assert reply.json()["details"][0]["fieldViolations"][0] == {
        "field": "book.title",
        "description": "must not be empty",
    }


def _trailers(*details: Any, code: int = 3) -> list[tuple[str, Any]]:
    packed = []
    for detail in details:
        entry = any_pb2.Any()
        entry.Pack(detail) if not isinstance(detail, any_pb2.Any) else entry.CopyFrom(detail)
        packed.append(entry)
    return [(DETAILS_TRAILER, status_pb2.Status(code=code, message="m", details=packed).SerializeToString())]


def test_decoder_never_fails_on_what_an_upstream_writes() -> None:
    decoder = DetailDecoder()
    code = grpc.StatusCode.INVALID_ARGUMENT
    # Bytes that are not the type they claim: passed on as bytes.
    lying = any_pb2.Any(type_url="type.googleapis.com/google.rpc.BadRequest", value=b"\xff\xff\xff")
    assert decoder.from_trailers(code, _trailers(lying)).details == [
        {"@type": lying.type_url, "value": base64.b64encode(lying.value).decode()}
    ]
    # A type URL without a slash, an empty one, a trailer that is text rather than bytes.
    odd = any_pb2.Any(type_url="no-slash", value=b"")
    assert decoder.from_trailers(code, _trailers(odd)).details == [{"@type": "no-slash", "value": ""}]
    assert decoder.from_trailers(code, [(DETAILS_TRAILER, "text")]).details == []
    assert decoder.from_trailers(code, None).details == []
    # A negative retry delay is no reason to wait.
    negative = error_details_pb2.RetryInfo()
    negative.retry_delay.seconds = -5
    assert decoder.from_trailers(code, _trailers(negative)).retry_after == 0


def test_debug_info_never_leaves_the_gateway() -> None:
    debug = error_details_pb2.DebugInfo(stack_entries=["File secret.py, line 1"], detail="SELECT * FROM users")
    info = error_details_pb2.ErrorInfo(reason="R", domain="d")
    details = DetailDecoder().from_trailers(grpc.StatusCode.INTERNAL, _trailers(debug, info, code=13)).details
    assert details == [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R", "domain": "d"}]


TYPE_URLS = st.sampled_from(
    [
        "type.googleapis.com/google.rpc.BadRequest",
        "type.googleapis.com/google.rpc.RetryInfo",
        "type.googleapis.com/google.rpc.DebugInfo",
        "type.googleapis.com/google.protobuf.Any",
        "type.googleapis.com/google.protobuf.Struct",
        "type.googleapis.com/tenantry.testing.echo.v1.EchoRequest",
        "",
        "/",
    ]
) | st.text(max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TYPE_URLS, st.binary(max_size=40)), max_size=4), st.binary(max_size=60))
def test_whatever_an_upstream_writes_the_decoder_answers_a_list(details: list[tuple[str, bytes]], junk: bytes) -> None:
    decoder = DetailDecoder(CONTRACTS.pool)
    packed = [any_pb2.Any(type_url=url, value=value) for url, value in details]
    status = status_pb2.Status(code=3, message="m", details=packed).SerializeToString()
    for trailer in (status, junk, status + junk):
        rich = decoder.from_trailers(grpc.StatusCode.INVALID_ARGUMENT, [(DETAILS_TRAILER, trailer)])
        assert all(isinstance(detail, dict) and "@type" in detail for detail in rich.details)
        json.dumps(rich.details)  # always encodable
        assert rich.retry_after is None or rich.retry_after >= 0


def _violations(reply: requests.Response) -> list[dict[str, str]]:
    assert reply.status_code == 400, reply.text
    details = reply.json()["details"]
    assert [detail["@type"] for detail in details] == ["type.googleapis.com/google.rpc.BadRequest"]
    return details[0].get("field_violations") or details[0]["fieldViolations"]  # type: ignore[no-any-return]


def test_the_gateway_s_own_400s_name_the_field_in_a_bad_request_detail(echo_gateway: str) -> None:
    flag = requests.get(f"{echo_gateway}/v1/echo/a", params={"flag": "maybe"})
    assert _violations(flag) == [{"field": "flag", "description": "parameter 'flag': expected true or false"}]
    assert _violations(requests.post(f"{echo_gateway}/v1/echo", json={"count": "many"}))[0]["field"] == "count"
    nested = requests.post(f"{echo_gateway}/v1/echo", json={"nested": {"inner": {"b": "x"}}})
    assert _violations(nested)[0]["field"] == "nested.inner.b"
    unknown = requests.post(f"{echo_gateway}/v1/echo", json={"nested": {"zz": 1}})
    assert _violations(unknown)[0]["field"] == "nested.zz"
    assert _violations(requests.post(f"{echo_gateway}/v1/echo", data=b'{"count": NaN}'))[0]["field"] == "count"
    mask = requests.patch(f"{echo_gateway}/v1/shelves/s1", params={"update_mask": "nope"}, json={})
    assert _violations(mask)[0]["field"] == "update_mask"
    key = requests.get(f"{echo_gateway}/v1/echo/a", params={"sizes[x]": "1"})
    assert _violations(key)[0]["field"] == "sizes[x]"
    # A body that is no JSON at all is about no one field.
    assert requests.post(f"{echo_gateway}/v1/echo", data="{nope").json()["details"] == []


def test_the_gateway_s_own_details_follow_the_json_names_setting(echo_json_names_gateway: str) -> None:
    reply = requests.get(f"{echo_json_names_gateway}/v1/echo/a", params={"flag": "maybe"})
    assert reply.json()["details"][0]["fieldViolations"][0]["field"] == "flag"
