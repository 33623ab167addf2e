"""The server's one interceptor: request, access and validation in a single wrapper.

grpc.aio runs every interceptor's `intercept_service` on every call, and each
of the three kit steps used to be an interceptor of its own: three coroutines,
three metadata dicts, three wrapped handlers and three context managers per
call. Here the steps are the same objects (kit.interceptors.request,
kit.interceptors.access, kit.interceptors.validation: their rules stay where
they are) run in the same order around the handler, wrapped once:

1. the request step (request id, the request context, error mapping, the log line);
2. the access step (the method's access rule, the caller's credential);
3. the request check (malformed requests refused naming the field);
4. the handler.

`python -m benchmarks.interceptors` prints what this saves per call.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import grpc

from kit.interceptors.access import AccessInterceptor
from kit.interceptors.base import Metadata, WrappingInterceptor
from kit.interceptors.request import RequestInterceptor
from kit.interceptors.validation import checked_request, lenient


class RpcPipeline(WrappingInterceptor):
    def __init__(self, request: RequestInterceptor, access: AccessInterceptor) -> None:
        self._request = request
        self._access = access

    def wrap(self, handler: grpc.RpcMethodHandler, method: str, metadata: Metadata) -> grpc.RpcMethodHandler:
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, metadata),
                request_deserializer=lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method, metadata),
                request_deserializer=lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        # Client-streaming methods are not wrapped: kit's services have none.
        return handler

    def _unary(self, behaviour: Any, method: str, metadata: Metadata) -> Any:
        request_step, access_step = self._request.guard, self._access.guard

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with request_step(method, metadata, context), access_step(method, metadata, context):
                return await behaviour(checked_request(request), context)

        return unary

    def _stream(self, behaviour: Any, method: str, metadata: Metadata) -> Any:
        request_step, access_step = self._request.guard, self._access.guard
        generator = inspect.isasyncgenfunction(behaviour)

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with request_step(method, metadata, context), access_step(method, metadata, context):
                checked_request(request)
                if generator:
                    async for response in behaviour(request, context):
                        yield response
                else:
                    await behaviour(request, context)

        return stream
