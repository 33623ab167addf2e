"""Wires the audit service: database, token verification, servicers, partition upkeep, checkpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tenantry.audit.v1 import (
    audit_export_service_pb2,
    audit_export_service_pb2_grpc,
    audit_service_pb2,
    audit_service_pb2_grpc,
)

from kit.auth_client import remote_api_keys, remote_verifier
from kit.clients import internal_channel, service_tokens
from kit.db import Database
from kit.errors import Unavailable
from kit.server import ServiceHost
from kit.settings import ServiceSettings
from services.audit.api import AuditApi, AuditIngestApi
from services.audit.archive.api import AuditExportApi
from services.audit.archive.commands import retention_of_settings
from services.audit.archive.retention_policy import RetentionPolicies
from services.audit.archive.stretch import StretchReader
from services.audit.checkpoints import CheckpointKey, CheckpointLog
from services.audit.models import DB_ROLE
from services.audit.service import AuditTrail
from services.audit.settings import AuditSettings

log = logging.getLogger(__name__)

PARTITION_UPKEEP_SECONDS = 24 * 3600


async def _guarded(job: Callable[[], Awaitable[object]], failure: str) -> None:
    """One pass of a background job; a failure is logged and the next pass tries again."""
    try:
        await job()
    except Unavailable:
        pass  # the database is down: logged once by the Database, tried again next round
    except Exception:
        log.error(failure, exc_info=True)


def build(settings: ServiceSettings) -> ServiceHost:
    assert isinstance(settings, AuditSettings)
    database = Database(settings.database_url, role=DB_ROLE, pool_size=settings.db_pool_size)
    checkpoint_key = CheckpointKey.load_or_create(settings.checkpoint_key_path)
    chain_key = settings.audit_chain_key.get_secret_value().encode()
    checkpoints = CheckpointLog(settings.audit_data_dir / "checkpoints", checkpoint_key)
    trail = AuditTrail(
        database, months_ahead=settings.partition_months_ahead, chain_key=chain_key, checkpoints=checkpoints
    )
    stretches = StretchReader(database, chain_key, checkpoints)
    retention = retention_of_settings(settings, database, checkpoints)
    export_api = AuditExportApi(
        stretches,
        RetentionPolicies(database, chain_key, settings.retention_months),
    )
    tokens, close_tokens = service_tokens(settings)
    auth_channel = internal_channel(settings.auth_service_addr, tokens)
    verifier, revoked, follow_revocations = remote_verifier(settings, auth_channel, tokens)

    async def keep_partitions_ready() -> None:
        while True:
            try:
                created = await trail.ensure_partitions()
                if created:
                    log.info("audit partitions created", extra={"count": created})
            except Unavailable:
                pass  # the database is down: logged once by the Database, tried again next round
            except Exception:
                log.error("audit partition upkeep failed", exc_info=True)
            await asyncio.sleep(PARTITION_UPKEEP_SECONDS)

    async def sign_checkpoints() -> None:
        while True:
            await asyncio.sleep(settings.checkpoint_interval_seconds)
            await _guarded(trail.checkpoint_moved_chains, "audit checkpoint pass failed")

    async def keep_retention() -> None:
        # A while after start, so a restart loop never runs it over and over.
        while True:
            await asyncio.sleep(min(settings.retention_interval_seconds, 600))
            await _guarded(retention.run, "audit retention run failed")
            await asyncio.sleep(max(settings.retention_interval_seconds - 600, 0))

    service = audit_service_pb2.DESCRIPTOR.services_by_name
    return ServiceHost(
        name="audit",
        listen_addr=settings.listen_addr,
        settings=settings,
        database=database,
        verifier=verifier,
        revocations=revoked,
        api_keys=remote_api_keys(settings, auth_channel),
        servicers=[
            (
                service["AuditService"],
                audit_service_pb2_grpc.add_AuditServiceServicer_to_server,
                AuditApi(database, trail, checkpoint_key),
            ),
            (
                service["AuditIngestService"],
                audit_service_pb2_grpc.add_AuditIngestServiceServicer_to_server,
                AuditIngestApi(trail),
            ),
            (
                audit_export_service_pb2.DESCRIPTOR.services_by_name["AuditExportService"],
                audit_export_service_pb2_grpc.add_AuditExportServiceServicer_to_server,
                export_api,
            ),
        ],
        background=[keep_partitions_ready, sign_checkpoints, keep_retention, follow_revocations],
        on_stop=[auth_channel.close, close_tokens],
    )
