"""GATEWAY_WORKERS: several gateway processes on one port, the kernel spreading connections.

One process's event loop is one core's worth of HTTP parsing, token checks and
JSON; with GATEWAY_WORKERS=N the first process binds the port with
SO_REUSEPORT, then starts N-1 more (new interpreters: nothing of the first's gRPC
state is inherited) that bind it too, and the kernel hands each new connection to one
of them. Each worker is a whole gateway with its own caches, rate limiter and
in-flight bound (see README, Gateway workers). The first process is the one to
signal: on SIGTERM or SIGINT it stops accepting, asks the others to stop the
same way and waits for them; a worker whose first process is gone stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.app import Gateway
from gateway.settings import GatewaySettings
from kit.logging import configure_logging

log = logging.getLogger("tenantry.http")

STOP_SECONDS = 10.0
# How often a worker checks that the first process is still there.
PARENT_CHECK_SECONDS = 1.0
# Connections the kernel holds for accept(); aiohttp's 128 overflowed in a burst of
# 200 new connections, and a dropped SYN is retried by the client only after 1 s.
# The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024


def serve(settings: GatewaySettings, gateway: Gateway) -> None:
    """Runs the gateway: this process, and GATEWAY_WORKERS - 1 more once it listens."""
    others: list[subprocess.Popen[bytes]] = []

    def listening() -> None:
        if settings.workers > 1:
            for index in range(1, settings.workers):
                # A fresh interpreter (nothing of this one's gRPC state), with this one's environment.
                command = [sys.executable, "-m", "gateway.workers", str(os.getpid()), str(index)]
                others.append(subprocess.Popen(command))

    try:
        _run(settings, gateway, worker=0, on_listening=listening)
    finally:
        _stop(others)


def _worker(parent: int, index: int) -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, tracebacks=settings.log_tracebacks)
    _run(settings, Gateway(settings), worker=index, parent=parent)


def _run(
    settings: GatewaySettings,
    gateway: Gateway,
    *,
    worker: int,
    parent: int | None = None,
    on_listening: Callable[[], None] | None = None,
) -> None:
    application = gateway.application()
    if parent is not None:
        application.cleanup_ctx.append(_watch_parent(parent))
    address = f"{settings.listen_host}:{settings.listen_port}"

    def listening(_message: str) -> None:
        # run_app "prints" once the socket is bound: only then is "listening" true.
        extra: dict[str, object] = {"address": f"http://{address}"}
        if settings.workers > 1:
            extra |= {"worker": worker, "pid": os.getpid()}
        log.info("listening", extra=extra)
        if on_listening is not None:
            on_listening()

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


def _watch_parent(parent: int) -> Callable[[web.Application], AsyncIterator[None]]:
    async def watch(_app: web.Application) -> AsyncIterator[None]:
        async def check() -> None:
            while os.getppid() == parent:
                await asyncio.sleep(PARENT_CHECK_SECONDS)
            os.kill(os.getpid(), signal.SIGTERM)  # the same graceful stop as a signal from outside

        task = asyncio.create_task(check())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return watch


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()  # SIGTERM: it finishes its requests in flight, as the first did
    for worker in workers:
        try:
            worker.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


if __name__ == "__main__":  # a worker after the first: python -m gateway.workers PARENT_PID INDEX
    _worker(int(sys.argv[1]), int(sys.argv[2]))
