"""Interceptors that wrap the RPC's behaviour, so that they run in the handler's task.

grpc.aio runs a handler apart from `intercept_service`, so context variables
set there would not reach it. Wrapping the behaviour itself keeps the request
context, error mapping and timing around the real call, streams included.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

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
        handler = await continuation(details)
        method: str = details.method  # type: ignore[attr-defined]
        if handler is None or is_infrastructure(method):
            return handler
        metadata: Metadata = {
            key: value for key, value in (details.invocation_metadata or ()) if isinstance(value, str)
        }  # type: ignore[attr-defined]
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method, metadata),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method, metadata),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, behaviour: Any, method: str, metadata: Metadata) -> Any:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with self.guard(method, metadata, context):
                return await behaviour(request, context)

        return unary

    def _wrap_stream(self, behaviour: Any, method: str, metadata: Metadata) -> Any:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with self.guard(method, metadata, context):
                if inspect.isasyncgenfunction(behaviour):
                    async for response in behaviour(request, context):
                        yield response
                else:
                    await behaviour(request, context)

        return stream
