"""The transcoder against the echo server: every binding kind, JSON mapping and status."""

from __future__ import annotations

import itertools
import json

import grpc
import pytest
import requests

from gateway.status import HTTP_STATUS


def test_path_variable_and_query_parameters(echo_gateway: str) -> None:
    reply = requests.get(
        f"{echo_gateway}/v1/echo/abc",
        params=[
            ("count", "7"),
            ("flag", "true"),
            ("color", "COLOR_RED"),
            ("big", "9007199254740993"),
            ("nested.a", "x"),
            ("nested.inner.b", "3"),
            ("nested.inner.labels", "l1"),
            ("nested.inner.labels", "l2"),
            ("tags", "t1"),
            ("tags", "t2"),
            ("numbers", "1"),
            ("numbers", "2"),
            ("when", "2024-05-01T10:00:00Z"),
            ("wait", "1.5s"),
            ("mask", "book.title,nested.a"),
        ],
    )
    assert reply.status_code == 200, reply.text
    echoed = reply.json()["request"]
    assert echoed["id"] == "abc" and echoed["count"] == 7 and echoed["flag"] is True
    assert echoed["color"] == "COLOR_RED" and echoed["big"] == "9007199254740993"
    assert echoed["nested"] == {"a": "x", "inner": {"b": 3, "labels": ["l1", "l2"]}}
    assert echoed["tags"] == ["t1", "t2"] and echoed["numbers"] == [1, 2]
    assert echoed["when"] == "2024-05-01T10:00:00Z" and echoed["wait"] == "1.500s"
    assert echoed["mask"] == "book.title,nested.a"


def test_camel_case_query_names_are_accepted(echo_gateway: str) -> None:
    assert requests.get(f"{echo_gateway}/v1/echo/a", params={"pageToken": "p"}).json()["request"]["page_token"] == "p"
    assert requests.get(f"{echo_gateway}/v1/echo/a", params={"page_token": "q"}).json()["request"]["page_token"] == "q"


def test_body_star_accepts_snake_and_camel_case(echo_gateway: str) -> None:
    reply = requests.post(
        f"{echo_gateway}/v1/echo",
        json={"id": "1", "book": {"title": "T"}, "nested": {"inner": {"labels": ["a"]}}, "count": 2},
    )
    assert reply.json()["request"]["book"] == {"name": "", "title": "T", "pages": "0"}
    camel = requests.post(f"{echo_gateway}/v1/echo", json={"id": "2", "pageToken": "c"})
    snake = requests.post(f"{echo_gateway}/v1/echo", json={"id": "2", "page_token": "s"})
    assert camel.json()["request"]["page_token"] == "c" and snake.json()["request"]["page_token"] == "s"


def test_body_field_binds_one_field_and_the_rest_comes_from_the_query(echo_gateway: str) -> None:
    reply = requests.put(f"{echo_gateway}/v1/echo/xyz/text", params={"count": "4"}, data=json.dumps("hello"))
    echoed = reply.json()["request"]
    assert (echoed["id"], echoed["text"], echoed["count"]) == ("xyz", "hello", 4)


def test_nested_field_path_with_a_pattern(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/shelves/s1/books/b%2F2")
    assert reply.json()["request"]["book"]["name"] == "shelves/s1/books/b%2F2"
    assert requests.get(f"{echo_gateway}/v1/shelves/s1/books").status_code == 404


def test_a_pattern_variable_with_encoded_slashes_matches_as_openapi_clients_send_it(echo_gateway: str) -> None:
    # OpenAPI knows {book.name=shelves/*/books/*} as one parameter, so clients encode its slashes.
    reply = requests.get(f"{echo_gateway}/v1/shelves%2Fs1%2Fbooks%2Fb2")
    assert reply.status_code == 200 and reply.json()["request"]["book"]["name"] == "shelves/s1/books/b2"
    assert requests.get(f"{echo_gateway}/v1/echo%2Fa").status_code == 404  # a literal is never one


def test_body_field_with_response_body(echo_gateway: str) -> None:
    reply = requests.patch(f"{echo_gateway}/v1/shelves/s1/books/b2", json={"title": "New", "pages": "12"})
    assert reply.status_code == 200
    # response_body: only the `request` field of the response comes back.
    assert reply.json()["book"] == {"name": "shelves/s1/books/b2", "title": "New", "pages": "12"}


def test_double_star_takes_many_segments(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/files/a/b/c.txt")
    assert reply.json()["request"]["name"] == "a/b/c.txt"


def test_custom_verb(echo_gateway: str) -> None:
    reply = requests.post(f"{echo_gateway}/v1/echo/job-1:cancel", json={})
    assert reply.json() == {**reply.json(), "method": "Cancel"}
    assert reply.json()["request"]["id"] == "job-1"


def test_server_stream_is_newline_delimited_json(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/stream/3")
    assert reply.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert [line["request"]["id"] for line in lines] == ["0", "1", "2"]
    broken = requests.get(f"{echo_gateway}/v1/stream/2", params={"flag": "true"})
    last = json.loads(broken.text.splitlines()[-1])
    assert last == {"error": {"code": 15, "message": "stream broke", "details": []}}


@pytest.mark.parametrize("code", [code for code in grpc.StatusCode if code != grpc.StatusCode.OK])
def test_every_grpc_status_maps_to_its_http_status(echo_gateway: str, code: grpc.StatusCode) -> None:
    reply = requests.get(f"{echo_gateway}/v1/fail/{code.value[0]}")
    expected = {
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.FAILED_PRECONDITION: 400,
        grpc.StatusCode.OUT_OF_RANGE: 400,
        grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.CANCELLED: 499,
        grpc.StatusCode.UNKNOWN: 500,
        grpc.StatusCode.INTERNAL: 500,
        grpc.StatusCode.DATA_LOSS: 500,
        grpc.StatusCode.UNIMPLEMENTED: 501,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    }[code]
    assert reply.status_code == expected == HTTP_STATUS[code]
    body = reply.json()
    assert body["code"] == code.value[0] and body["details"] == []
    assert body["message"] == (
        "the service is unavailable; retry later"
        if code == grpc.StatusCode.UNAVAILABLE
        else f"failed with {code.value[0]}"
    )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda g: requests.post(f"{g}/v1/echo", data="{not json"), "not valid JSON"),
        (lambda g: requests.post(f"{g}/v1/echo", json={"id": "1", "unknown_field": 1}), "unknown_field"),
        (lambda g: requests.post(f"{g}/v1/echo", json={"count": "many"}), "count"),
        (lambda g: requests.post(f"{g}/v1/echo", json=[1, 2]), "JSON object"),
        (
            lambda g: requests.get(f"{g}/v1/echo/a", params=[("count", "1"), ("count", "2")]),
            "'count' is given more than once",
        ),
        (lambda g: requests.get(f"{g}/v1/echo/a", params={"nope": "1"}), "'nope'"),
        (lambda g: requests.get(f"{g}/v1/echo/a", params={"flag": "maybe"}), "'flag'"),
        (lambda g: requests.get(f"{g}/v1/echo/a", params={"color": "COLOR_GREEN"}), "color"),
        (lambda g: requests.get(f"{g}/v1/echo/a", params={"when": "yesterday"}), "when"),
        (lambda g: requests.get(f"{g}/v1/echo/a", params={"nested": "x"}), "'nested'"),
        (lambda g: requests.post(f"{g}/v1/echo", params={"count": "1"}, json={}), "'count'"),
    ],
)
def test_bad_input_is_400_naming_the_field(echo_gateway: str, call, fragment: str) -> None:  # type: ignore[no-untyped-def]
    reply = call(echo_gateway)
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == 3 and fragment in reply.json()["message"]


def test_unknown_path_is_404_and_wrong_method_is_405(echo_gateway: str) -> None:
    missing = requests.get(f"{echo_gateway}/v1/nowhere")
    assert missing.status_code == 404 and missing.json()["code"] == 5
    wrong = requests.delete(f"{echo_gateway}/v1/echo/abc")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]


def test_internal_and_unannotated_rpcs_are_not_exposed(echo_gateway: str) -> None:
    assert requests.get(f"{echo_gateway}/v1/hidden").status_code == 404


def test_authenticated_route_needs_a_token(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/secret")
    assert reply.status_code == 401 and reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_body_limit_is_413(echo_gateway: str) -> None:
    reply = requests.post(f"{echo_gateway}/v1/echo", json={"text": "x" * 5000})
    assert reply.status_code == 413 and reply.json()["code"] == 8
    chunked = requests.post(f"{echo_gateway}/v1/echo", data=iter([b'{"text": "', b"x" * 4000, b'"}']))
    assert chunked.status_code == 413


def test_deadline_passing_is_504_and_a_shorter_client_timeout_wins(echo_gateway: str) -> None:
    assert requests.get(f"{echo_gateway}/v1/slow", params={"wait": "3s"}).status_code == 504
    quick = requests.get(f"{echo_gateway}/v1/slow", params={"wait": "0.5s"}, headers={"grpc-timeout": "100m"})
    assert quick.status_code == 504
    assert requests.get(f"{echo_gateway}/v1/slow", params={"wait": "0.1s"}).status_code == 200
    bad = requests.get(f"{echo_gateway}/v1/slow", headers={"grpc-timeout": "soon"})
    assert bad.status_code == 400


def test_request_id_and_trace_context_are_passed_on(echo_gateway: str) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    reply = requests.get(f"{echo_gateway}/v1/echo/a", headers={"X-Request-Id": "req-42", "traceparent": trace})
    assert reply.headers["X-Request-Id"] == "req-42"
    metadata = reply.json()["metadata"]
    assert "x-request-id=req-42" in metadata and f"traceparent={trace}" in metadata
    assert "x-forwarded-for=127.0.0.1" in metadata
    generated = requests.get(f"{echo_gateway}/v1/echo/a")
    assert (
        generated.headers["X-Request-Id"]
        and f"x-request-id={generated.headers['X-Request-Id']}" in generated.json()["metadata"]
    )
    assert requests.get(f"{echo_gateway}/v1/nowhere").headers["X-Request-Id"]


def test_several_upstream_addresses_are_balanced_round_robin(balanced_gateway: str) -> None:
    served = [
        next(
            entry
            for entry in requests.get(f"{balanced_gateway}/v1/echo/{index}").json()["metadata"]
            if entry.startswith("served-by=")
        )
        for index in range(6)
    ]
    assert served.count("served-by=first") == 3 and served.count("served-by=second") == 3
    assert all(a != b for a, b in itertools.pairwise(served))


def test_explicit_single_segment_variable(echo_gateway: str) -> None:
    assert requests.get(f"{echo_gateway}/v1/items/it%2Fem/view").json()["request"]["id"] == "it/em"
    assert requests.get(f"{echo_gateway}/v1/items/a/b/view").status_code == 404


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("198.51.100.7, 203.0.113.9", "203.0.113.9"),  # the left entry was written by the client
        ("203.0.113.9, 127.0.0.1", "203.0.113.9"),  # a second trusted hop is skipped
        ("not-an-address", "127.0.0.1"),
    ],
)
def test_client_address_behind_a_trusted_proxy(echo_gateway: str, forwarded: str, client: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/echo/a", headers={"X-Forwarded-For": forwarded})
    assert f"x-forwarded-for={client}" in reply.json()["metadata"]
