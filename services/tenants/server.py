"""Wires the tenants service: registry, token verification, outbox relay."""

from __future__ import annotations

from tenantry.auth.v1 import auth_service_pb2_grpc
from tenantry.tenants.v1 import (
    system_settings_service_pb2,
    system_settings_service_pb2_grpc,
    tenants_service_pb2,
    tenants_service_pb2_grpc,
)

from kit.auth_client import remote_api_keys, remote_verifier
from kit.clients import internal_channel, internal_metadata, service_tokens
from kit.db import Database
from kit.outbox import Outbox, relay_jobs
from kit.server import ServiceHost
from kit.settings import ServiceSettings
from services.tenants.api import TenantApi
from services.tenants.models import DB_ROLE, outbox
from services.tenants.service import TenantRegistry
from services.tenants.settings import TenantsSettings
from services.tenants.system_settings.api import SystemSettingsApi
from services.tenants.system_settings.service import SystemSettings
from services.tenants.tenant_cache import TenantCache


def build(settings: ServiceSettings) -> ServiceHost:
    assert isinstance(settings, TenantsSettings)
    database = Database(settings.database_url, role=DB_ROLE, pool_size=settings.db_pool_size)
    tokens, close_tokens = service_tokens(settings)
    metadata = internal_metadata(settings.internal_api_token.get_secret_value(), tokens)
    auth_channel = internal_channel(settings.auth_service_addr, tokens)
    verifier, revoked, follow_revocations = remote_verifier(settings, auth_channel, tokens)
    audit_outbox = Outbox(outbox)
    relay, close_relay = relay_jobs(audit_outbox, database, settings, tokens)
    cache = TenantCache(settings.database_url, role=DB_ROLE)
    registry = TenantRegistry(
        database, audit_outbox, auth_service_pb2_grpc.AuthInternalServiceStub(auth_channel), metadata, cache
    )

    async def stop() -> None:
        await auth_channel.close()
        await close_relay()
        await close_tokens()

    return ServiceHost(
        name="tenants",
        listen_addr=settings.listen_addr,
        settings=settings,
        database=database,
        verifier=verifier,
        revocations=revoked,
        api_keys=remote_api_keys(settings, auth_channel),
        servicers=[
            (
                tenants_service_pb2.DESCRIPTOR.services_by_name["TenantService"],
                tenants_service_pb2_grpc.add_TenantServiceServicer_to_server,
                TenantApi(database, registry),
            ),
            (
                system_settings_service_pb2.DESCRIPTOR.services_by_name["SystemSettingsService"],
                system_settings_service_pb2_grpc.add_SystemSettingsServiceServicer_to_server,
                SystemSettingsApi(database, SystemSettings(audit_outbox)),
            ),
        ],
        background=[follow_revocations, relay, cache.follow_changes],
        on_stop=[stop],
    )
