"""A grpc.aio server interceptor: the caller verified, the principal in context.

    services = tickets_pb2.DESCRIPTOR.services_by_name.values()
    server = grpc.aio.server(interceptors=[TenantryServerInterceptor(verifier, services)])

Every RPC needs a valid credential (an access token, or an API key when the
verifier has an exchange) unless it is listed in `public`. It also needs the
permissions given for it in `permissions` ({"/pkg.Service/Method": [...]})
and those its contract names in Tenantry's `(tenantry.common.v1.access)`
option, if it carries one, checked against the token's `perms`, `x.*` sets
included. Health checking and reflection pass untouched.

The tenant is the token's `tid`, nothing else: an `x-tenant-id` the caller
sends (the gateway sets it from the token) must name the same tenant, or the
call is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from tenantry.common.v1 import access_pb2

from tenantry_client.context import Principal, acting_as
from tenantry_client.errors import PermissionMissing, TenantryClientError
from tenantry_client.grpc_wrapping import wrapped_handler
from tenantry_client.verifier import TenantryVerifier

log = logging.getLogger(__name__)

INFRASTRUCTURE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
TENANT_HEADER = "x-tenant-id"


def required_permissions(services: Iterable[ServiceDescriptor]) -> dict[str, tuple[str, ...]]:
    """Each method path ("/pkg.Service/Method") and the permissions its contract names."""
    rules: dict[str, tuple[str, ...]] = {}
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            named: tuple[str, ...] = ()
            if options.HasExtension(access_pb2.access):
                named = tuple(options.Extensions[access_pb2.access].permissions)
            rules[f"/{service.full_name}/{method.name}"] = named
    return rules


class TenantryServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        verifier: TenantryVerifier,
        services: Iterable[ServiceDescriptor] = (),
        *,
        permissions: Mapping[str, Iterable[str]] | None = None,
        public: Iterable[str] = (),
    ) -> None:
        self._verifier = verifier
        self._permissions = required_permissions(services)
        for method, named in (permissions or {}).items():
            self._permissions[method] = (*self._permissions.get(method, ()), *named)
        self._public = frozenset(public)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(INFRASTRUCTURE_PREFIXES) or method in self._public:
            return handler
        metadata = {key: value for key, value in (details.invocation_metadata or ()) if isinstance(value, str)}  # type: ignore[attr-defined]
        needed = self._permissions.get(method, ())
        wrapped = wrapped_handler(handler, lambda context: self._as_caller(metadata, needed, context))
        # Client streams are not wrapped, so they are refused rather than let through unchecked.
        return wrapped if wrapped is not None else _refusing(handler)

    @asynccontextmanager
    async def _as_caller(
        self, metadata: dict[str, str], needed: tuple[str, ...], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        principal = await self._principal(metadata, needed, context)
        with acting_as(principal):
            async with _answered_safely(context):
                yield

    async def _principal(self, metadata: dict[str, str], needed: tuple[str, ...], context: Any) -> Principal:
        try:
            principal = await self._verifier.authenticate(
                authorization=metadata.get("authorization"), api_key=metadata.get("x-api-key")
            )
            claimed = metadata.get(TENANT_HEADER)
            if claimed is not None and claimed != str(principal.tenant_id or ""):
                raise PermissionMissing(["the tenant named by x-tenant-id (the token names another)"])
            principal.require(*needed)
        except TenantryClientError as refused:
            await context.abort(refused.grpc_code, refused.message)
        return principal


@asynccontextmanager
async def _answered_safely(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """A handler's refusal (`principal.require(...)` failing) becomes its status;
    anything unexpected becomes INTERNAL with no detail (logged here), never a
    stack trace or exception text in the caller's hands."""
    try:
        yield
    except TenantryClientError as refused:
        await context.abort(refused.grpc_code, refused.message)
    except (grpc.aio.AbortError, grpc.aio.UsageError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("unexpected error in an RPC handler")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "client-streaming methods are not supported")

    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            refuse, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        refuse, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )
