"""Builds and runs the tickets service: the grpc.aio server with tenantry-client's
interceptor, the database with the tenant bound per transaction, and the
relay that ships the audit outbox to the tenant's trail in Tenantry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from tenantry_client.audit import AuditClient, every_tenant
from tenantry_client.credentials import CredentialSource, client_credentials, internal_token
from tenantry_client.grpc_server import TenantryServerInterceptor
from tenantry_client.outbox import AuditOutbox
from tenantry_client.rls import bind_tenant_per_transaction
from tenantry_client.verifier import TenantryVerifier

from examples.tickets import schema
from examples.tickets.contract import SERVICE_NAME, load_contract
from examples.tickets.service import CREATE_PERMISSION, LIST_PERMISSION, TicketService

log = logging.getLogger("tickets")


@dataclass(frozen=True)
class Settings:
    listen_address: str
    database_url: str
    auth_address: str
    audit_address: str
    # The service's credential for auth's revocation stream and the audit
    # ingest: a platform service account (client id and secret) holding
    # auth.revocations.watch and audit.ingest, or else Tenantry's internal token.
    client_id: str
    client_secret: str
    internal_api_token: str

    def credentials(self) -> CredentialSource:
        if self.client_id:
            return client_credentials(self.auth_address, self.client_id, self.client_secret)
        return internal_token(self.internal_api_token)

    @classmethod
    def from_environment(cls) -> Settings:
        url = os.environ["DATABASE_URL"]
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                url = "postgresql+asyncpg://" + url.removeprefix(plain)
        return cls(
            listen_address=os.environ.get("TICKETS_LISTEN_ADDR", "127.0.0.1:50070"),
            database_url=url,
            auth_address=os.environ.get("AUTH_SERVICE_ADDR", "127.0.0.1:50051"),
            audit_address=os.environ.get("AUDIT_SERVICE_ADDR", "127.0.0.1:50053"),
            client_id=os.environ.get("TICKETS_CLIENT_ID", ""),
            client_secret=os.environ.get("TICKETS_CLIENT_SECRET", ""),
            internal_api_token=os.environ.get("INTERNAL_API_TOKEN", ""),
        )


def runtime_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=5)

    @event.listens_for(engine.sync_engine, "connect")
    def _act_as_runtime_role(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.run_async(lambda connection: connection.execute(f"SET ROLE {schema.RUNTIME_ROLE}"))

    return engine


async def serve(settings: Settings) -> None:
    contract = load_contract()
    owner_engine = create_async_engine(settings.database_url)
    try:
        await schema.bootstrap(owner_engine)
    finally:
        await owner_engine.dispose()
    engine = runtime_engine(settings.database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    bind_tenant_per_transaction(sessions)

    credentials = settings.credentials()
    verifier = TenantryVerifier(settings.auth_address, credentials=credentials)
    audit = AuditClient(settings.audit_address, credentials=every_tenant(credentials))
    outbox = AuditOutbox(schema.audit_outbox)
    tickets = TicketService(contract, sessions, outbox)

    service = contract.service
    interceptor = TenantryServerInterceptor(
        verifier,
        [service],
        permissions={
            f"/{SERVICE_NAME}/CreateTicket": [CREATE_PERMISSION],
            f"/{SERVICE_NAME}/ListTickets": [LIST_PERMISSION],
        },
    )
    server = grpc.aio.server(interceptors=[interceptor])
    handlers = {
        "CreateTicket": (tickets.create_ticket, "CreateTicketRequest", "Ticket"),
        "ListTickets": (tickets.list_tickets, "ListTicketsRequest", "ListTicketsResponse"),
    }
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE_NAME,
                {
                    name: grpc.unary_unary_rpc_method_handler(
                        behaviour,
                        request_deserializer=contract.message(request).FromString,
                        response_serializer=contract.message(response).SerializeToString,
                    )
                    for name, (behaviour, request, response) in handlers.items()
                },
            )
        ]
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(settings.listen_address)

    await verifier.start()
    relay = asyncio.create_task(outbox.relay(sessions, audit))
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("tickets serving on %s", settings.listen_address)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, stopping.set)
    await stopping.wait()
    await server.stop(grace=5)
    relay.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await relay
    await verifier.close()
    await audit.close()
    await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(Settings.from_environment()))
