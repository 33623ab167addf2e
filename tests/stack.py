"""A running Tenantry for tests: three real service processes on one database."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
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
from tenantry.auth.v1 import (
    auth_pb2,
    auth_service_pb2,
    auth_service_pb2_grpc,
    members_service_pb2,
    members_service_pb2_grpc,
    roles_service_pb2_grpc,
)
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2, tenants_service_pb2_grpc

from devtools.stack import ServiceProcess, free_port, service_env, service_identities
from kit import migrations

OPERATOR_EMAIL = "operator@tenantry.test"
OPERATOR_PASSWORD = "operator-password-1"
INTERNAL_API_TOKEN = "test-internal-token-0123456789"
AUDIT_CHAIN_KEY = "test-audit-chain-key-0123456789"
GATEWAY_TOKEN = "test-gateway-token-0123456789"
API_KEY_HASH_KEY = "test-api-key-hash-key-0123456789"
# Each service's own platform service account secret (auth provisions them at start).
SERVICE_SECRETS = {name: f"test-{name}-service-secret-0123456789abcdef" for name in ("tenants", "audit")}
OWNER_PASSWORD = "owner-password-1"
MEMBER_PASSWORD = "member-password-1"

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
        # Checkpoints name scopes like "platform" that every run has: one directory per run.
        self.audit_data_dir = Path(tempfile.mkdtemp(prefix="tenantry-audit-"))
        env = service_env(
            self.database_url,
            INTERNAL_API_TOKEN,
            addresses,
            audit_chain_key=AUDIT_CHAIN_KEY,
            audit_data_dir=self.audit_data_dir,
            gateway_token=GATEWAY_TOKEN,
            api_key_hash_key=API_KEY_HASH_KEY,
        )
        env.update(
            {
                "AUDIT_CHECKPOINT_INTERVAL_SECONDS": "1",
                "PLATFORM_ADMIN_EMAIL": OPERATOR_EMAIL,
                "PLATFORM_ADMIN_PASSWORD": OPERATOR_PASSWORD,
                # Cheap hashing for speed, and room for the suite's bursts of concurrent logins
                # (a login holds its place from before its database work); cost and bound are tested apart.
                "BCRYPT_ROUNDS": "4",
                "BCRYPT_MAX_WORKERS": "4",
                "BCRYPT_MAX_QUEUE": "128",
                **self.extra_env,
            }
        )
        identities = service_identities(SERVICE_SECRETS)
        for name in ("audit", "auth", "tenants"):
            own_env = {**env, **identities.get(name, {})}
            self.processes[name] = ServiceProcess(name, addresses[name], own_env, log_path=self.log_dir / f"{name}.log")
        for process in self.processes.values():
            process.start()
        for process in self.processes.values():
            process.wait_serving()
        self.channels = {name: grpc.insecure_channel(process.address) for name, process in self.processes.items()}
        self.auth = auth_service_pb2_grpc.AuthServiceStub(self.channels["auth"])
        self.auth_internal = auth_service_pb2_grpc.AuthInternalServiceStub(self.channels["auth"])
        self.members = members_service_pb2_grpc.MemberServiceStub(self.channels["auth"])
        self.roles = roles_service_pb2_grpc.RoleServiceStub(self.channels["auth"])
        self.tenants = tenants_service_pb2_grpc.TenantServiceStub(self.channels["tenants"])
        self.audit = audit_service_pb2_grpc.AuditServiceStub(self.channels["audit"])
        self.audit_ingest = audit_service_pb2_grpc.AuditIngestServiceStub(self.channels["audit"])

    def stop(self) -> None:
        for channel in getattr(self, "channels", {}).values():
            channel.close()
        for process in self.processes.values():
            process.stop()
        if hasattr(self, "audit_data_dir"):
            shutil.rmtree(self.audit_data_dir, ignore_errors=True)

    def replica(self, name: str, log_path: Path, *, workers: int = 1, **env: str) -> ServiceProcess:
        """Another instance of the service beside the stack's, on a port of its own, with env added and
        that many workers (kit.workers); serving, with every worker listening."""
        address = f"127.0.0.1:{free_port()}"
        own_env = {
            **self.processes[name].env,
            **env,
            f"{name.upper()}_LISTEN_ADDR": address,
            f"{name.upper()}_WORKERS": str(workers),
        }
        process = ServiceProcess(name, address, own_env, log_path=log_path)
        process.start()
        process.wait_serving()
        if workers > 1:
            eventually(lambda: listening_workers(log_path) == set(range(workers)), timeout=30)
        return process

    @contextmanager
    def service_stopped(self, name: str) -> Iterator[None]:
        """Stops one service for the block, then starts it again on the same address
        and waits until every service serves again (after auth was away, the
        others serve once their revocation streams are back)."""
        process = self.processes[name]
        process.stop()
        try:
            yield
        finally:
            process.start()
            for each in self.processes.values():
                each.wait_serving()

    # Calls ------------------------------------------------------------------

    def login(self, email: str, password: str, tenant_slug: str = "") -> auth_service_pb2.TokenResponse:
        return self.auth.Login(
            auth_service_pb2.LoginRequest(email=email, password=password, tenant_slug=tenant_slug), timeout=10
        )

    def operator_token(self) -> str:
        return self.login(OPERATOR_EMAIL, OPERATOR_PASSWORD).access_token

    def create_tenant(self, prefix: str = "t", *, owner_email: str | None = None, **fields: Any) -> Tenant:
        """A tenant with a logged-in owner. An owner email that is already
        registered is invited; the test then accepts as that person, which
        verifies the email and (for an unverified account) resets its password."""
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
        if created.owner_status == tenants_pb2.OWNER_STATUS_INVITED:
            accepted = self.accept(self.invitation_token(email), full_name="Owner Person", password=OWNER_PASSWORD)
            tokens = accepted.tokens
        else:
            tokens = self.login(email, OWNER_PASSWORD, slug)
        return Tenant(created.id, slug, email, tokens.access_token, tokens.refresh_token)

    def token_refused_by_tenants(self, token: str) -> bool:
        """GetMyTenant answers UNAUTHENTICATED: the token's session has ended, as tenants sees it."""
        error = rpc_error(
            lambda: self.tenants.GetMyTenant(tenants_service_pb2.GetMyTenantRequest(), metadata=bearer(token))
        )
        return error.code() == grpc.StatusCode.UNAUTHENTICATED

    def invite(self, token: str, email: str, role: str = "admin") -> auth_pb2.Invitation:
        return self.members.CreateInvitation(
            members_service_pb2.CreateInvitationRequest(email=email, role=role), metadata=bearer(token), timeout=10
        )

    def invitation_token(self, email: str) -> str:
        """The token of the newest invitation email to this address, read from
        the email outbox as the mail sender would: never from an API answer."""
        rows = self.sql(
            "SELECT payload->>'link' FROM auth.email_outbox WHERE recipient = %s AND template = 'invitation' "
            "ORDER BY created_at DESC LIMIT 1",
            (email,),
        )
        assert rows, f"no invitation email to {email}"
        return str(rows[0][0]).split("token=", 1)[1]

    def accept(
        self, token: str, *, full_name: str = "", password: str = "", access_token: str | None = None
    ) -> auth_service_pb2.AcceptInvitationResponse:
        return self.auth.AcceptInvitation(
            auth_service_pb2.AcceptInvitationRequest(token=token, full_name=full_name, password=password),
            metadata=bearer(access_token) if access_token else None,
            timeout=10,
        )

    def add_member(
        self, tenant: Tenant, email: str, role: str = "admin", password: str = MEMBER_PASSWORD
    ) -> auth_service_pb2.TokenResponse:
        """Invites a new person into the tenant and accepts as them; their tokens."""
        self.invite(tenant.owner_token, email, role)
        return self.accept(self.invitation_token(email), full_name="A Member", password=password).tokens

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


@contextmanager
def own_stack(database_url: str, log_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A stack of a test's own, on an empty database it migrates first; stopped afterwards."""
    for service in ("audit", "auth", "tenants"):
        migrations.upgrade(service, database_url)
    running = Stack(database_url, log_dir, extra_env=extra_env or {})
    try:
        running.start()
        yield running
    finally:
        running.stop()


def listening_workers(log: Path) -> set[object]:
    """The workers a service's JSON log says are listening (None for a single process)."""
    lines = log.read_text().splitlines() if log.exists() else []
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return {entry.get("worker") for entry in entries if entry.get("message") == "listening"}


async def until(condition: Callable[[], bool], within: float) -> bool:
    """Whether condition became true within that many seconds, polled without blocking the loop."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


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
