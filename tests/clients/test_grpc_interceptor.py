"""tenantry-client's grpc.aio interceptor, in front of a small server of the test's own."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from tenantry_client.context import require_principal
from tenantry_client.credentials import internal_token
from tenantry_client.grpc_server import TenantryServerInterceptor
from tenantry_client.verifier import TenantryVerifier

from tests.stack import INTERNAL_API_TOKEN, Stack, Tenant, bearer

SERVICE = "test.client.v1.Probe"


async def whoami(request: Any, context: grpc.aio.ServicerContext) -> struct_pb2.Struct:
    principal = require_principal()
    answer = struct_pb2.Struct()
    answer.update({"tenant": str(principal.tenant_id)})
    return answer


async def needs_reports(request: Any, context: grpc.aio.ServicerContext) -> struct_pb2.Struct:
    require_principal().require("app.reports.read")
    return struct_pb2.Struct()


async def breaks(request: Any, context: grpc.aio.ServicerContext) -> struct_pb2.Struct:
    raise RuntimeError("connection string postgresql://secret@db")


async def hello(request: Any, context: grpc.aio.ServicerContext) -> struct_pb2.Struct:
    return struct_pb2.Struct()


def call_all(stack: Stack, calls: list[tuple[str, tuple[tuple[str, str], ...]]]) -> list[Any]:
    async def run() -> list[Any]:
        verifier = TenantryVerifier(stack.processes["auth"].address, credentials=internal_token(INTERNAL_API_TOKEN))
        await verifier.start()
        await verifier.wait_ready()
        interceptor = TenantryServerInterceptor(
            verifier,
            permissions={f"/{SERVICE}/Write": ["app.tickets.write"]},
            public=[f"/{SERVICE}/Hello"],
        )
        server = grpc.aio.server(interceptors=[interceptor])
        handlers = {"WhoAmI": whoami, "Write": whoami, "Reports": needs_reports, "Breaks": breaks, "Hello": hello}
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        name: grpc.unary_unary_rpc_method_handler(
                            behaviour,
                            request_deserializer=struct_pb2.Struct.FromString,
                            response_serializer=struct_pb2.Struct.SerializeToString,
                        )
                        for name, behaviour in handlers.items()
                    },
                )
            ]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        results: list[Any] = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                for method, metadata in calls:
                    call = channel.unary_unary(
                        f"/{SERVICE}/{method}",
                        request_serializer=struct_pb2.Struct.SerializeToString,
                        response_deserializer=struct_pb2.Struct.FromString,
                    )
                    try:
                        results.append(dict(await call(struct_pb2.Struct(), metadata=metadata, timeout=10)))
                    except grpc.aio.AioRpcError as error:
                        results.append((error.code(), error.details()))
        finally:
            await server.stop(0)
            await verifier.close()
        return results

    return asyncio.run(run())


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> Tenant:
    return stack.create_tenant("probe")


def test_the_caller_and_tenant_reach_the_handler_and_refusals_carry_their_status(stack: Stack, tenant: Tenant) -> None:
    viewer = stack.add_member(tenant, f"viewer@{tenant.slug}.test", role="viewer")
    owner = bearer(tenant.owner_token)
    results = call_all(
        stack,
        [
            ("WhoAmI", owner),
            ("Write", owner),
            ("Write", bearer(viewer.access_token)),
            ("Reports", bearer(viewer.access_token)),
            ("WhoAmI", ()),
            ("WhoAmI", (*owner, ("x-tenant-id", "00000000-0000-0000-0000-000000000001"))),
            ("Breaks", owner),
            ("Hello", ()),
        ],
    )
    assert results[0] == {"tenant": tenant.id}
    assert results[1] == {"tenant": tenant.id}
    assert results[2] == (grpc.StatusCode.PERMISSION_DENIED, "requires the permission: app.tickets.write")
    assert results[3] == (grpc.StatusCode.PERMISSION_DENIED, "requires the permission: app.reports.read")
    assert results[4] == (grpc.StatusCode.UNAUTHENTICATED, "a bearer access token is required")
    assert results[5][0] == grpc.StatusCode.PERMISSION_DENIED
    # Nothing of the exception reaches the caller.
    assert results[6] == (grpc.StatusCode.INTERNAL, "internal error")
    assert results[7] == {}
