"""Server streams over HTTP: NDJSON by default, Server-Sent Events when asked, read by an SSE client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import requests

from gateway.streaming import sse_event, wants_event_stream
from tests.gateway.echo_server import CANCELLED_STREAMS
from tests.gateway.sse_client import Event, read_events

SSE = {"Accept": "text/event-stream"}


async def _events(url: str, headers: dict[str, str] | None = None) -> tuple[aiohttp.ClientResponse, list[Event]]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers or SSE) as response:
        return response, [event async for event in read_events(response)]


def events(url: str, headers: dict[str, str] | None = None) -> tuple[aiohttp.ClientResponse, list[Event]]:
    return asyncio.run(_events(url, headers))


def test_event_stream_answers_one_data_event_per_message(echo_gateway: str) -> None:
    response, received = events(f"{echo_gateway}/v1/stream/3")
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache" and "Accept" in response.headers["Vary"]
    assert [event.type for event in received] == ["message"] * 3
    assert [json.loads(event.data)["request"]["id"] for event in received] == ["0", "1", "2"]


def test_each_event_reaches_the_client_while_the_stream_is_still_open(echo_gateway: str) -> None:
    async def first_event_and_state() -> tuple[Event, bool]:
        # The upstream waits 1 s before its second message: the first must not wait for it.
        url = f"{echo_gateway}/v1/stream/2?wait=1s"
        async with aiohttp.ClientSession() as session, session.get(url, headers=SSE) as response:
            stream = read_events(response)
            first = await anext(stream)
            still_open = not response.content.at_eof()
            rest = [event async for event in stream]
            assert len(rest) == 1
            return first, still_open

    first, still_open = asyncio.run(first_event_and_state())
    assert json.loads(first.data)["request"]["id"] == "0" and still_open


def test_a_failing_stream_ends_with_an_error_event(echo_gateway: str) -> None:
    _, received = events(f"{echo_gateway}/v1/stream/2?flag=true")
    assert [event.type for event in received] == ["message", "message", "error"]
    assert json.loads(received[-1].data) == {"code": 15, "message": "stream broke", "details": []}


def test_a_stream_failing_before_its_first_message_is_an_http_error(echo_gateway: str) -> None:
    response, received = events(f"{echo_gateway}/v1/stream/0?flag=true")
    assert response.status == 500 and received == []
    ndjson = requests.get(f"{echo_gateway}/v1/stream/0", params={"flag": "true"})
    assert ndjson.status_code == 500 and ndjson.json()["message"] == "stream broke"


def test_without_event_stream_in_accept_the_answer_stays_ndjson(echo_gateway: str) -> None:
    for accept in ("application/json", "*/*", "text/event-stream;q=0", ""):
        reply = requests.get(f"{echo_gateway}/v1/stream/2", headers={"Accept": accept})
        assert reply.headers["Content-Type"].startswith("application/x-ndjson"), accept
        assert [json.loads(line)["request"]["id"] for line in reply.text.splitlines()] == ["0", "1"]


def test_an_empty_stream_is_an_empty_event_stream(echo_gateway: str) -> None:
    response, received = events(f"{echo_gateway}/v1/stream/0")
    assert response.status == 200 and received == []


def test_a_unary_route_answers_json_even_when_events_are_asked_for(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/echo/a", headers=SSE)
    assert reply.headers["Content-Type"].startswith("application/json") and reply.json()["method"] == "Echo"


def test_accept_negotiation() -> None:
    assert wants_event_stream("text/event-stream")
    assert wants_event_stream("application/json;q=0.9, TEXT/EVENT-STREAM ; q=0.5")
    assert not wants_event_stream("text/event-stream;q=0")
    assert not wants_event_stream("text/event-stream;q=zero")
    assert wants_event_stream("text/event-stream;q=zero, text/event-stream;q=0.1")
    assert not wants_event_stream("*/*") and not wants_event_stream(None)


def test_an_event_keeps_its_data_on_data_lines_whatever_the_text() -> None:
    document: dict[str, Any] = {"text": "line\nbreak\r\rcarriage: colon", "n": 1}
    encoded = sse_event(document, "error")
    assert encoded.endswith(b"\n\n") and encoded.count(b"\n\n") == 1
    assert encoded.startswith(b"event: error\ndata: ")
    assert json.loads(encoded.split(b"data: ", 1)[1]) == document


def test_a_client_leaving_mid_stream_cancels_the_upstream_call(echo_gateway: str) -> None:
    async def leave_after_the_first_event() -> None:
        url = f"{echo_gateway}/v1/stream/100?wait=0.1s&id=leaver"
        async with aiohttp.ClientSession() as session, session.get(url, headers=SSE) as response:
            await anext(read_events(response))

    asyncio.run(leave_after_the_first_event())
    # The gateway learns the client left when a write fails (the first write to a closed socket may
    # still succeed), then cancels; the upstream notices at its next message. Without the cancel it
    # would stream all 100 (10 s) to a gateway that drops them.
    deadline = time.monotonic() + 8
    while "leaver" not in CANCELLED_STREAMS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "leaver" in CANCELLED_STREAMS


def test_the_test_client_parses_by_the_whatwg_rules() -> None:
    """The reader itself: CRLF, CR and LF line ends split anywhere, comments, multi-line data, a BOM."""

    class Chunks:
        def __init__(self, chunks: list[bytes]) -> None:
            self.content = self
            self._chunks = chunks

        async def iter_any(self) -> Any:
            for chunk in self._chunks:
                yield chunk

    text = "\ufeff: comment\r\nevent: a\rdata: 1\ndata:2\r\n\r\nid: 7\ndata:  x\n\nevent: lost\n\ndata: unterminated"
    raw = text.encode()

    async def read(chunks: list[bytes]) -> list[Event]:
        return [event async for event in read_events(Chunks(chunks))]  # type: ignore[arg-type]

    expected = [Event("a", "1\n2", ""), Event("message", " x", "7")]
    assert asyncio.run(read([raw])) == expected
    assert asyncio.run(read([raw[i : i + 1] for i in range(len(raw))])) == expected  # a byte at a time
