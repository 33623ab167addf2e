"""Server streams of google.api.HttpBody: the chunks' bytes are the response body itself.

A file (an audit export) is streamed as it is made: each chunk is written as
it arrives, and the next is read only once the client has taken it (aiohttp's
drain), so the gateway holds one chunk at a time whatever the file's size.
The first chunk's content_type is the response's. A failure after the first
byte cannot become a status any more: the connection is cut before the final
chunk, so the client sees an incomplete transfer, never a file that looks whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.descriptor import Descriptor

from gateway.status import GatewayError

HTTP_BODY = "google.api.HttpBody"
# A file's whole transfer may take this long (an export of millions of events
# to a slow client), not the unary upstream deadline; a client that goes away
# cancels the upstream call at once, and a shorter grpc-timeout header is honoured.
FILE_STREAM_SECONDS = 3600.0

log = logging.getLogger(__name__)


def is_http_body(descriptor: Descriptor) -> bool:
    return bool(descriptor.full_name == HTTP_BODY)


async def stream_http_body(
    request: web.Request,
    headers: dict[str, str],
    call: Any,
    *,
    failure: Callable[[grpc.aio.AioRpcError], GatewayError],
) -> web.StreamResponse:
    """Writes every chunk's data as it comes; a failure before the first is an ordinary error answer.

    A client that goes away (or anything else ending this early) cancels the
    upstream call, so an abandoned download stops the export at once."""
    chunks = call.__aiter__()
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = None
    except grpc.aio.AioRpcError as error:
        raise failure(error) from None
    content_type = (first.content_type if first is not None else "") or "application/octet-stream"
    response = web.StreamResponse(status=200, headers={**headers, "Content-Type": content_type})
    finished = False
    try:
        await response.prepare(request)
        if first is not None:
            await response.write(first.data)
            async for chunk in chunks:
                await response.write(chunk.data)
        finished = True
    except grpc.aio.AioRpcError as error:
        log.warning("stream failed after its first chunk; connection cut", extra={"code": error.code().name})
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionResetError:
        log.info("client went away during a file stream; upstream call cancelled")
        return response
    finally:
        if not finished:
            call.cancel()
    await response.write_eof()
    return response
