"""A loopback proxy in front of PostgreSQL that counts a client's round trips and
can hold the server's answers back (a slow or silent server)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from kit.db import Database
from kit.settings import asyncpg_url

Listener = TypeVar("Listener")

SSL_OR_GSS_REQUESTS = {80877103, 80877104}


class RoundTripCounter:
    """A loopback proxy in front of PostgreSQL counting the client's round trips:
    each Sync (extended protocol) or Query (simple protocol) message waits for
    the server's ReadyForQuery, whatever the driver."""

    def __init__(self, host: str, port: int, socket_folder: str | None = None) -> None:
        """socket_folder: the server listens on a Unix socket there (the embedded server) instead."""
        self.upstream = (host, port)
        self.socket_folder = socket_folder
        self.round_trips = 0
        self.server: asyncio.Server | None = None
        # Cleared: the server's answers are held back (a slow or silent server), not lost.
        self.answering = asyncio.Event()
        self.answering.set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        if self.socket_folder is not None:
            path = f"{self.socket_folder}/.s.PGSQL.{self.upstream[1]}"
            server_in, server_out = await asyncio.open_unix_connection(path)
        else:
            server_in, server_out = await asyncio.open_connection(*self.upstream)
        back = asyncio.create_task(self._pipe(server_in, client_out))
        try:
            await self._count_client_messages(client_in, server_out)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            server_out.close()
            back.cancel()

    async def _count_client_messages(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        starting = True
        while True:
            if starting:
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                body = await reader.readexactly(length - 8)
                starting = code in SSL_OR_GSS_REQUESTS
                writer.write(head + body)
            else:
                head = await reader.readexactly(5)
                length = struct.unpack("!i", head[1:])[0]
                body = await reader.readexactly(length - 4)
                if head[:1] in (b"S", b"Q"):
                    self.round_trips += 1
                writer.write(head + body)
            await writer.drain()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.answering.wait()
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@asynccontextmanager
async def proxied_url(database_url: str, ssl_parameter: str = "ssl") -> AsyncIterator[tuple[str, RoundTripCounter]]:
    """database_url through a RoundTripCounter of its own, which reads no TLS: ssl_parameter says so
    (SQLAlchemy's asyncpg dialect reads ssl, asyncpg's own DSN sslmode)."""
    url = make_url(asyncpg_url(database_url))
    # The embedded server's URL names its socket's folder in the query (?host=/tmp/...), not in the host.
    query = dict(url.query)
    named_host = query.pop("host", None)
    socket_folder = named_host if isinstance(named_host, str) and named_host.startswith("/") else None
    query.pop("port", None)
    counter = RoundTripCounter(url.host or "127.0.0.1", url.port or 5432, socket_folder)
    port = await counter.start()
    proxied = url.set(host="127.0.0.1", port=port, query={**query, ssl_parameter: "disable"})
    try:
        yield proxied.render_as_string(hide_password=False), counter
    finally:
        assert counter.server is not None
        counter.server.close()


@asynccontextmanager
async def listening_behind_proxy(
    database_url: str,
    role: str,
    make: Callable[[str, Database], Listener],
    listen: Callable[[Listener], Coroutine[Any, Any, None]],
) -> AsyncIterator[tuple[Listener, Database, RoundTripCounter]]:
    """A listener made on a proxied URL (asyncpg's own DSN) and listening in the background,
    a Database straight to PostgreSQL beside it, and the proxy to hold the listener's answers back."""
    database = Database(asyncpg_url(database_url), role=role, pool_size=1)
    async with proxied_url(database_url, "sslmode") as (listener_url, proxy):
        listener = make(listener_url, database)
        task = asyncio.create_task(listen(listener))
        try:
            yield listener, database, proxy
        finally:
            task.cancel()
            await database.dispose()
