"""Running code around a grpc.aio handler's behaviour, in the handler's own task.

grpc.aio runs a handler apart from `intercept_service`, so context variables
set there would not reach it. Wrapping the behaviour itself keeps a context
(the caller, the request id), error mapping and timing around the real call,
streams included. Tenantry's kit builds its interceptors on this too.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

# What runs around one call, given the call's context.
Around = Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]


def wrapped_handler(handler: grpc.RpcMethodHandler, around: Around) -> grpc.RpcMethodHandler | None:
    """handler with around entered for each call; None for client-streaming
    handlers, which are not wrapped (the caller decides what they get)."""
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _unary(handler.unary_unary, around),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _stream(handler.unary_stream, around),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return None


def _unary(behaviour: Any, around: Around) -> Any:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with around(context):
            return await behaviour(request, context)

    return unary


def _stream(behaviour: Any, around: Around) -> Any:
    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with around(context):
            if inspect.isasyncgenfunction(behaviour):
                async for response in behaviour(request, context):
                    yield response
            else:
                await behaviour(request, context)

    return stream
