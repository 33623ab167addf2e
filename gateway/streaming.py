"""A server stream over HTTP: newline-delimited JSON, or Server-Sent Events when the client asks for them.

NDJSON (the default): one JSON document a line; a failure after the first message ends the
stream with `{"error": {code, message, details}}`. Server-Sent Events (`Accept: text/event-stream`,
WHATWG HTML §9.2): one `data:` event a message, and a failure ends it with `event: error` whose
data is the same error body. A failure before the first message is an ordinary HTTP error with a
JSON body either way, since the status line is not sent yet (an EventSource then stops, rather
than reconnecting to a call that cannot succeed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import orjson
from aiohttp import web

from gateway.status import GatewayError

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
NDJSON = "application/x-ndjson"


def wants_event_stream(accept: str | None) -> bool:
    """Whether the Accept header names text/event-stream with a non-zero quality (RFC 9110 §12.5.1)."""
    for media_range in (accept or "").split(","):
        media, *parameters = media_range.split(";")
        if media.strip().lower() != EVENT_STREAM:
            continue
        quality = next((p.split("=", 1)[1].strip() for p in parameters if p.strip().lower().startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:
            continue  # a malformed range counts as absent
    return False


def sse_event(document: Any, event: str | None = None) -> bytes:
    """One event: the JSON on `data:` lines (orjson writes none of its own, but a line break must
    never end the field early), then the blank line that dispatches it."""
    lines = [b"event: " + event.encode("ascii")] if event else []
    lines.extend(b"data: " + line for line in orjson.dumps(document).split(b"\n"))
    return b"\n".join(lines) + b"\n\n"


def ndjson_line(document: Any) -> bytes:
    return orjson.dumps(document) + b"\n"


async def stream_response(
    request: web.Request,
    messages: AsyncIterator[Any],
    *,
    encode: Callable[[Any], Any],
    failure: Callable[[grpc.aio.AioRpcError], GatewayError],
    headers: dict[str, str],
) -> web.StreamResponse:
    """Relays the upstream's messages as they come; `failure` turns a gRPC error into the gateway's."""
    events = wants_event_stream(request.headers.get("Accept"))
    iterator = messages.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    except grpc.aio.AioRpcError as error:
        raise failure(error) from None
    vary = ", ".join(filter(None, [headers.get("Vary"), "Accept"]))
    if events:
        # no-cache and no proxy buffering: each event must reach the client when it is sent.
        kind = {"Content-Type": EVENT_STREAM, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    else:
        kind = {"Content-Type": NDJSON}
    response = web.StreamResponse(status=200, headers={**headers, **kind, "Vary": vary})
    try:
        await response.prepare(request)
        try:
            if first is not None:
                await response.write(sse_event(encode(first)) if events else ndjson_line(encode(first)))
                async for item in iterator:
                    await response.write(sse_event(encode(item)) if events else ndjson_line(encode(item)))
        except grpc.aio.AioRpcError as error:
            body = failure(error).body()
            await response.write(sse_event(body, "error") if events else ndjson_line({"error": body}))
        await response.write_eof()
    except ConnectionResetError:
        # The client went away (an EventSource closed): nothing to answer, and the upstream call ends below.
        log.debug("stream client disconnected")
    finally:
        # A call left open would keep the upstream streaming to nobody until it ends by itself.
        cancel = getattr(messages, "cancel", None)
        if cancel is not None:
            cancel()
    return response
