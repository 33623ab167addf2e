"""GATEWAY_WORKERS: several gateway processes on one port (kit.workers).

One process's event loop is one core's worth of HTTP parsing, token checks and
JSON. Each worker is a whole gateway with its own caches, rate limiter and
in-flight bound (see README, Workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from kit.workers import OtherWorkers, stop_with_first, this_worker

log = logging.getLogger("tenantry.http")

# Connections the kernel holds for accept(); aiohttp's 128 overflowed in a burst of
# 200 new connections, and a dropped SYN is retried by the client only after 1 s.
# The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024


def serve(settings: GatewaySettings, gateway: Gateway) -> None:
    """Runs this process's gateway; the first also starts GATEWAY_WORKERS - 1 more once it listens."""
    worker = this_worker()
    others = OtherWorkers(worker, settings.workers)
    address = f"{settings.listen_host}:{settings.listen_port}"

    def listening(_message: str) -> None:
        # run_app "prints" once the socket is bound: only then is "listening" true.
        log.info("listening", extra={"address": f"http://{address}", "pid": os.getpid()})
        others.start()

    application = gateway.application()
    application.cleanup_ctx.append(_running(others.keep_running()))

    async def stop_others(_app: web.Application) -> None:
        others.ask_to_stop()  # as soon as this process stops accepting: they drain alongside it

    application.on_shutdown.append(stop_others)
    if worker.first_pid is not None:
        application.cleanup_ctx.append(_running(stop_with_first(worker.first_pid)))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        web.run_app(
            application,
            host=settings.listen_host,
            port=settings.listen_port,
            print=listening,
            reuse_port=settings.workers > 1 or None,
            backlog=LISTEN_BACKLOG,
        )
    except OSError as error:
        reason = error.strerror or str(error)
        raise SystemExit(f"gateway: cannot listen on {address} (GATEWAY_HOST, GATEWAY_PORT): {reason}") from None
    finally:
        others.stop()


def _running(job: Coroutine[Any, Any, None]) -> Callable[[web.Application], AsyncIterator[None]]:
    """A background job for as long as the application runs."""

    async def run(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(job)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run
