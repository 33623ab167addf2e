"""Builds and runs a service's grpc.aio server, the same way for every service.

The servicers, each method wrapped once in kit's steps (request, access, then
validation: kit.interceptors.pipeline), standard health checking wired to the
database and the revocation list, keepalive agreed with the clients
(kit.clients), server reflection, background tasks, a graceful stop on
SIGTERM or SIGINT, and, with <SERVICE>_WORKERS=N, N processes on the port (kit.workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kit.access import access_rules
from kit.api_keys import ApiKeyTokens
from kit.clients import server_keepalive_options
from kit.db import Database
from kit.interceptors.access import AccessInterceptor
from kit.interceptors.pipeline import PipelinedRegistration, RpcPipeline
from kit.interceptors.request import RequestInterceptor
from kit.revocations import RevokedSessions
from kit.settings import ServiceSettings
from kit.tokens import AccessTokenVerifier
from kit.workers import OtherWorkers, stop_with_first, this_worker

log = logging.getLogger(__name__)

HEALTH_INTERVAL_SECONDS = 1.0
# Readiness of the revocation list is re-read this often (it is in memory).
READINESS_POLL_SECONDS = 0.05
HEALTH_TIMEOUT_SECONDS = 2.0
GRACE_SECONDS = 5.0
# How long a worker after the first waits for its revocation list before it listens.
WORKER_READY_SECONDS = 30.0


@dataclass
class ServiceHost:
    """What a service hands to the kit to be served."""

    name: str
    listen_addr: str
    settings: ServiceSettings
    database: Database
    verifier: AccessTokenVerifier
    # The revoked sessions the verifier checks: the service reports SERVING
    # only while this list is current.
    revocations: RevokedSessions
    # (service descriptor, function adding the servicer to a server, servicer)
    servicers: list[tuple[Any, Callable[[Any, grpc.aio.Server], None], Any]]
    # Started just before the server listens, cancelled when it stops.
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    on_start: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Turns API keys callers present into access tokens; None: keys are refused.
    api_keys: ApiKeyTokens | None = None


async def _watch_readiness(host: ServiceHost, health_servicer: health.aio.HealthServicer) -> None:
    """SERVING while the database answers and the revoked-session list is
    current: until then authenticated RPCs would answer UNAVAILABLE anyway,
    so load balancers should send nothing here."""
    names = ["", *(descriptor.full_name for descriptor, _, _ in host.servicers)]
    last: int | None = None
    database_up = False
    next_ping = 0.0
    loop = asyncio.get_running_loop()
    while True:
        if loop.time() >= next_ping:
            try:
                await asyncio.wait_for(host.database.ping(), HEALTH_TIMEOUT_SECONDS)
                database_up = True
            except Exception:
                database_up = False
            next_ping = loop.time() + HEALTH_INTERVAL_SECONDS
        revocations_current = host.revocations.is_current()
        serving = database_up and revocations_current
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        if status != last:
            log.info(
                "health",
                extra={"serving": serving, "database": database_up, "revocations_current": revocations_current},
            )
            for name in names:
                await health_servicer.set(name, status)
            last = status
        await asyncio.sleep(READINESS_POLL_SECONDS)


async def _until_current(host: ServiceHost) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WORKER_READY_SECONDS
    while not host.revocations.is_current():
        if loop.time() >= deadline:
            log.warning("revocations not current yet; listening anyway (answering UNAVAILABLE until they are)")
            return
        await asyncio.sleep(READINESS_POLL_SECONDS)


def server_pipeline(host: ServiceHost) -> RpcPipeline:
    """The three steps (request, access, validation) every servicer method runs in."""
    descriptors = [descriptor for descriptor, _, _ in host.servicers]
    return RpcPipeline(
        RequestInterceptor(gateway_token=host.settings.gateway_token.get_secret_value()),
        AccessInterceptor(
            access_rules(*descriptors),
            host.verifier,
            host.settings.internal_api_token.get_secret_value(),
            host.api_keys,
        ),
    )


def add_servicers(host: ServiceHost, server: grpc.aio.Server) -> None:
    """Each servicer's methods, wrapped in the pipeline once, here: no interceptor runs per call."""
    registration = PipelinedRegistration(server, server_pipeline(host))
    for _, add, servicer in host.servicers:
        add(servicer, registration)


async def serve(host: ServiceHost) -> None:
    descriptors = [descriptor for descriptor, _, _ in host.servicers]
    worker = this_worker()
    count = host.settings.workers
    # SO_REUSEPORT only when asked for workers: otherwise a second process started
    # by mistake on the same port would silently take half the connections.
    server = grpc.aio.server(options=(("grpc.so_reuseport", int(count > 1)), *server_keepalive_options()))
    add_servicers(host, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *(descriptor.full_name for descriptor in descriptors)]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        [*(descriptor.full_name for descriptor in descriptors), health.SERVICE_NAME, reflection.SERVICE_NAME],
        server,
    )
    port = server.add_insecure_port(host.listen_addr)
    if port == 0:
        raise SystemExit(f"{host.name}: cannot listen on {host.listen_addr}")
    if count > 1 and host.listen_addr.endswith(":0"):
        raise SystemExit(f"{host.name}: {count} workers need a fixed port to share, not {host.listen_addr}")

    for start in host.on_start:
        await start()
    tasks = [asyncio.create_task(job()) for job in host.background]
    if not worker.is_first:
        # The kernel hands a worker connections as soon as it listens: it listens
        # once it can answer them, not with UNAVAILABLE for want of revocations.
        await _until_current(host)
    await server.start()
    tasks.append(asyncio.create_task(_watch_readiness(host, health_servicer)))
    log.info("listening", extra={"address": host.listen_addr, "pid": os.getpid()})
    others = OtherWorkers(worker, count)
    others.start()
    tasks.append(asyncio.create_task(others.keep_running()))
    if worker.first_pid is not None:
        tasks.append(asyncio.create_task(stop_with_first(worker.first_pid)))

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()

    log.info("stopping")
    others.ask_to_stop()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(GRACE_SECONDS)
    await asyncio.to_thread(others.wait_stopped)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for stop in host.on_stop:
        await stop()
    await host.database.dispose()
    log.info("stopped")
