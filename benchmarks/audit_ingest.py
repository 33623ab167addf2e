"""Audit ingest: `AppendAuditEvents` in batches of 500, as the outbox relays send them.

Four concurrent senders (the relays of three services and a spare), each
batch spread over a few tenants, against a throwaway Tenantry. The run is
split in halves so that a slowdown as the tenants' history grows shows.
Run: `make bench` or `python -m benchmarks.audit_ingest`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import grpc
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from tenantry.audit.v1 import audit_pb2, audit_service_pb2

from benchmarks.harness import tenantry
from benchmarks.postgres_cpu import backend_cpu_seconds
from benchmarks.processes import cpu_seconds
from tests.stack import INTERNAL

BATCH = 500
SENDERS = 4
BATCHES_PER_SENDER = 20
TENANTS = [str(uuid.uuid4()) for _ in range(4)]
# The audit service's pool names its connections so (kit.db).
AUDIT_BACKENDS = "tenantry-tenantry_audit"


def batch_of_events(sender: int, number: int) -> audit_service_pb2.AppendAuditEventsRequest:
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    details = Struct()
    details.update({"category": "auth", "outcome": "success", "reason": "password", "n": number})
    return audit_service_pb2.AppendAuditEventsRequest(
        events=[
            audit_pb2.AuditEvent(
                id=str(uuid.uuid4()),
                tenant_id=TENANTS[(sender + index) % len(TENANTS)],
                user_id=str(uuid.uuid4()),
                action="auth.token.refreshed",
                resource_type="session",
                resource_id=str(uuid.uuid4()),
                details=details,
                ip_address="127.0.0.1",
                user_agent="benchmark/1.0",
                request_id=uuid.uuid4().hex,
                created_at=now,
            )
            for index in range(BATCH)
        ]
    )


METHOD = "/tenantry.audit.v1.AuditIngestService/AppendAuditEvents"


def serialized_batches(half: int) -> list[list[bytes]]:
    """Each sender's batches for one half of the run, encoded once beforehand: the client shares the
    machine's two cores with the service, and what it spends building and encoding is not the service's."""
    return [
        [batch_of_events(sender, half * 1000 + number).SerializeToString() for number in range(BATCHES_PER_SENDER // 2)]
        for sender in range(SENDERS)
    ]


@dataclass
class Ingested:
    """Seconds each half of the run took, and the CPU seconds spent meanwhile by each process measured."""

    halves: list[float]
    cpu: dict[str, float]


@dataclass(frozen=True)
class Measured:
    """What to measure beside throughput: the audit process, and its backends in PostgreSQL."""

    audit_pid: int | None = None
    admin_url: str = ""
    database: str = ""

    async def cpu(self) -> dict[str, float]:
        readings = {"client (this process)": time.process_time()}
        if self.audit_pid:
            readings["audit service"] = cpu_seconds(self.audit_pid)
        if self.admin_url:
            backends = await backend_cpu_seconds(self.admin_url, self.database, AUDIT_BACKENDS)
            if backends is not None:
                readings["PostgreSQL (audit's backends)"] = backends
        return readings


async def ingest(address: str, measured: Measured = Measured()) -> Ingested:
    async with grpc.aio.insecure_channel(address) as channel:
        # Requests go as the bytes encoded beforehand (no request serializer).
        append = channel.unary_unary(
            METHOD, response_deserializer=audit_service_pb2.AppendAuditEventsResponse.FromString
        )
        first = batch_of_events(0, 0).SerializeToString()
        await append(first, metadata=INTERNAL, timeout=30)
        result = Ingested([], {})
        for half in range(2):
            batches = serialized_batches(half)

            async def send(sender: int, batches: list[list[bytes]] = batches) -> None:
                for batch in batches[sender]:
                    await append(batch, metadata=INTERNAL, timeout=60)

            before = await measured.cpu()
            started = time.perf_counter()
            await asyncio.gather(*(send(sender) for sender in range(SENDERS)))
            result.halves.append(time.perf_counter() - started)
            after = await measured.cpu()
            for name, seconds in after.items():
                result.cpu[name] = result.cpu.get(name, 0.0) + seconds - before[name]
        # A retried batch (a lost acknowledgement) must add nothing.
        reply = await append(first, metadata=INTERNAL, timeout=30)
        if reply.appended != 0:
            raise SystemExit(f"a retried batch appended {reply.appended} events")
        return result


def main() -> None:
    with tenantry() as running:
        audit = running.stack.processes["audit"]
        assert audit.process is not None
        database = urlsplit(running.stack.database_url).path.lstrip("/")
        measured = Measured(audit.process.pid, running.admin_url, database)
        result = asyncio.run(ingest(audit.address, measured))
    per_half = SENDERS * (BATCHES_PER_SENDER // 2) * BATCH
    print(f"audit ingest, batches of {BATCH}, {SENDERS} senders, {len(TENANTS)} tenants")
    for name, seconds in zip(("first half", "second half"), result.halves, strict=True):
        print(f"  {name}: {per_half} events in {seconds:.2f} s = {per_half / seconds:,.0f} events/s")
    total = 2 * per_half
    print(f"  overall: {total / sum(result.halves):,.0f} events/s (goal 10,000)")
    # CPU time moves far less than throughput when other work shares the cores.
    batches = total / BATCH
    for name, seconds in result.cpu.items():
        print(f"  CPU per batch of {BATCH}, {name}: {seconds / batches * 1000:.1f} ms")
    print("  (the audit service's checkpoints included; the client sends batches encoded beforehand)")


if __name__ == "__main__":
    main()
