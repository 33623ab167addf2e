"""Interceptors that wrap the RPC's behaviour, so that they run in the handler's task.

grpc.aio runs a handler apart from `intercept_service`, so context variables
set there would not reach it. Wrapping the behaviour itself keeps the request
context, error mapping and timing around the real call, streams included. The
wrapping is the client library's (tenantry_client.grpc_wrapping), which
backends' interceptors use too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager

import grpc
from tenantry_client.grpc_wrapping import wrapped_handler

from kit.access import is_infrastructure

Metadata = dict[str, str]


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    def guard(
        self, method: str, metadata: Metadata, context: grpc.aio.ServicerContext
    ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler, method, metadata = await handler_and_call(continuation, details)
        return handler if metadata is None else self.wrap(handler, method, metadata)

    def wrap(self, handler: grpc.RpcMethodHandler, method: str, metadata: Metadata) -> grpc.RpcMethodHandler:
        """The handler with guard entered around each call (client streams are left as they are)."""
        wrapped = wrapped_handler(handler, lambda context: self.guard(method, metadata, context))
        return wrapped if wrapped is not None else handler


async def handler_and_call(
    continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
    details: grpc.HandlerCallDetails,
) -> tuple[grpc.RpcMethodHandler, str, Metadata | None]:
    """The method's handler, its path and the call's text metadata; None for metadata
    when kit leaves the call alone (no such method, or health checks and reflection)."""
    handler = await continuation(details)
    method: str = details.method  # type: ignore[attr-defined]
    if handler is None or is_infrastructure(method):
        return handler, method, None
    return handler, method, text_metadata(details.invocation_metadata)  # type: ignore[attr-defined]


def text_metadata(pairs: Iterable[tuple[str, str | bytes]] | None) -> Metadata:
    """The call's text metadata (binary `-bin` values left out), by key."""
    return {key: value for key, value in (pairs or ()) if isinstance(value, str)}


def call_metadata(context: grpc.aio.ServicerContext) -> Metadata:
    return text_metadata(context.invocation_metadata())
