"""A Server-Sent Events reader for the tests, by the WHATWG HTML standard's parsing rules (§9.2.6).

Lines end with CRLF, LF or CR; a blank line dispatches the event; `:` starts a comment; one space
after the field's colon is dropped; `data` lines join with LF; a dispatched event with no data is
dropped. Events are yielded as they arrive, so a test sees one before the stream has ended.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass
class Event:
    type: str
    data: str
    id: str


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[Event]:
    buffer, first = "", True
    event_type, data, last_id = "", "", ""
    # A chunk may end inside a character.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in response.content.iter_any():
        buffer += decoder.decode(chunk)
        if first and buffer:
            buffer, first = buffer.removeprefix("\ufeff"), False
        while (found := _LINE_END.search(buffer)) is not None:
            # A CR at the very end may be the first half of a CRLF: wait for the next chunk.
            if found.group() == "\r" and found.end() == len(buffer):
                break
            line, buffer = buffer[: found.start()], buffer[found.end() :]
            if not line:
                if data:
                    yield Event(event_type or "message", data.removesuffix("\n"), last_id)
                event_type, data = "", ""
                continue
            if line.startswith(":"):
                continue
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "event":
                event_type = value
            elif name == "data":
                data += value + "\n"
            elif name == "id" and "\0" not in value:
                last_id = value
    # At the end of the stream an event not ended by a blank line is discarded (the standard's rule).
