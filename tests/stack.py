"""A running Tenantry for tests: three real service processes on one database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import psycopg
from tenantry.audit.v1 import audit_pb2, audit_service_pb2, audit_service_pb2_grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2, tenants_service_pb2_grpc

from devtools.stack import ServiceProcess, free_port, service_env

OPERATOR_EMAIL = "operator@tenantry.test"
OPERATOR_PASSWORD = "operator-password-1"
INTERNAL_API_TOKEN = "test-internal-token-0123456789"
AUDIT_CHAIN_KEY = "test-audit-chain-key-0123456789"
GATEWAY_TOKEN = "test-gateway-token-0123456789"
OWNER_PASSWORD = "owner-password-1"

T = TypeVar("T")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


INTERNAL = (("x-internal-token", INTERNAL_API_TOKEN),)


@dataclass
class Tenant:
    id: str
    slug: str
    owner_email: str
    owner_token: str
    owner_refresh: str


@dataclass
class Stack:
    database_url: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self) -> None:
        addresses = {name: f"127.0.0.1:{free_port()}" for name in ("auth", "tenants", "audit")}
        env = service_env(
            self.database_url,
            INTERNAL_API_TOKEN,
            addresses,
            audit_chain_key=AUDIT_CHAIN_KEY,
            gateway_token=GATEWAY_TOKEN,
        )
        env.update(
            {
                "PLATFORM_ADMIN_EMAIL": OPERATOR_EMAIL,
                "PLATFORM_ADMIN_PASSWORD": OPERATOR_PASSWORD,
                # Cheap hashing for speed; the cost itself is tested apart.
                "BCRYPT_ROUNDS": "4",
                "BCRYPT_MAX_WORKERS": "4",
                **self.extra_env,
            }
        )
        for name in ("audit", "auth", "tenants"):
            self.processes[name] = ServiceProcess(name, addresses[name], env, log_path=self.log_dir / f"{name}.log")
        for process in self.processes.values():
            process.start()
        for process in self.processes.values():
            process.wait_serving()
        self.channels = {name: grpc.insecure_channel(process.address) for name, process in self.processes.items()}
        self.auth = auth_service_pb2_grpc.AuthServiceStub(self.channels["auth"])
        self.auth_internal = auth_service_pb2_grpc.AuthInternalServiceStub(self.channels["auth"])
        self.tenants = tenants_service_pb2_grpc.TenantServiceStub(self.channels["tenants"])
        self.audit = audit_service_pb2_grpc.AuditServiceStub(self.channels["audit"])
        self.audit_ingest = audit_service_pb2_grpc.AuditIngestServiceStub(self.channels["audit"])

    def stop(self) -> None:
        for channel in getattr(self, "channels", {}).values():
            channel.close()
        for process in self.processes.values():
            process.stop()

    @contextmanager
    def service_stopped(self, name: str) -> Iterator[None]:
        """Stops one service for the block, then starts it again on the same address."""
        process = self.processes[name]
        process.stop()
        try:
            yield
        finally:
            process.start()
            process.wait_serving()

    # Calls ------------------------------------------------------------------

    def login(self, email: str, password: str, tenant_slug: str = "") -> auth_service_pb2.TokenResponse:
        return self.auth.Login(
            auth_service_pb2.LoginRequest(email=email, password=password, tenant_slug=tenant_slug), timeout=10
        )

    def operator_token(self) -> str:
        return self.login(OPERATOR_EMAIL, OPERATOR_PASSWORD).access_token

    def create_tenant(self, prefix: str = "t", *, owner_email: str | None = None, **fields: Any) -> Tenant:
        slug = f"{prefix}-{uuid.uuid4().hex[:10]}"
        email = owner_email or f"owner@{slug}.test"
        created = self.tenants.CreateTenant(
            tenants_service_pb2.CreateTenantRequest(
                name=fields.pop("name", f"Tenant {slug}"),
                slug=slug,
                subscription_tier=fields.pop("subscription_tier", tenants_pb2.SUBSCRIPTION_TIER_BASIC),
                owner=tenants_service_pb2.TenantOwner(email=email, full_name="Owner Person", password=OWNER_PASSWORD),
                **fields,
            ),
            metadata=bearer(self.operator_token()),
            timeout=30,
        )
        tokens = self.login(email, OWNER_PASSWORD, slug)
        return Tenant(created.id, slug, email, tokens.access_token, tokens.refresh_token)

    def audit_events(self, token: str, **filters: Any) -> list[audit_pb2.AuditEvent]:
        reply = self.audit.ListAuditEvents(
            audit_service_pb2.ListAuditEventsRequest(page_size=200, **filters), metadata=bearer(token), timeout=10
        )
        return list(reply.events)

    # Direct database access, for what only the database can show ----------

    def sql(self, query: str, params: tuple[Any, ...] = (), *, role: str | None = None, tenant: str = "") -> list[Any]:
        with psycopg.connect(self.database_url, autocommit=False) as connection:
            if role:
                connection.execute(f'SET ROLE "{role}"')
            connection.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))
            cursor = connection.execute(query, params)
            rows = cursor.fetchall() if cursor.description else []
            connection.commit()
            return rows


def eventually(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """Polls check until it returns something truthy (or raises no AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded but should have failed")
