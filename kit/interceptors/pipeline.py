"""The server's steps around every RPC: request, access and validation in a single wrapper.

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

kit.server wraps each method's handler once, when the servicers are added
(PipelinedRegistration), so no interceptor runs per call at all.
`python -m benchmarks.interceptors` prints what that saves per call.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from kit.interceptors.access import AccessInterceptor
from kit.interceptors.base import call_metadata
from kit.interceptors.request import RequestInterceptor
from kit.interceptors.validation import checked_request, lenient


class RpcPipeline:
    def __init__(self, request: RequestInterceptor, access: AccessInterceptor) -> None:
        self._request = request
        self._access = access

    def wrap_method(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The method's handler with the steps around each call, made once when the
        server is built (kit.server): the call's metadata is read in the call."""
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method),
                request_deserializer=lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method),
                request_deserializer=lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        # Client-streaming methods are not wrapped: kit's services have none.
        return handler

    def _unary(self, behaviour: Any, method: str) -> Any:
        request_step, access_step = self._request.guard, self._access.check

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = call_metadata(context)
            async with request_step(method, metadata, context):
                await access_step(method, metadata)
                return await behaviour(checked_request(request), context)

        return unary

    def _stream(self, behaviour: Any, method: str) -> Any:
        request_step, access_step = self._request.guard, self._access.check
        generator = inspect.isasyncgenfunction(behaviour)

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            metadata = call_metadata(context)
            async with request_step(method, metadata, context):
                await access_step(method, metadata)
                checked_request(request)
                if generator:
                    async for response in behaviour(request, context):
                        yield response
                else:
                    await behaviour(request, context)

        return stream


class PipelinedRegistration:
    """Stands in for the server while a generated add_*Servicer_to_server adds a
    servicer: each of its methods' handlers reaches the server wrapped in the
    pipeline, once, instead of being wrapped by an interceptor on every call."""

    def __init__(self, server: grpc.aio.Server, pipeline: RpcPipeline) -> None:
        self._server = server
        self._pipeline = pipeline

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_PipelinedHandlers(handler, self._pipeline) for handler in handlers)
        )

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self._server.add_registered_method_handlers(
            service,
            {name: self._pipeline.wrap_method(handler, f"/{service}/{name}") for name, handler in handlers.items()},
        )


class _PipelinedHandlers(grpc.GenericRpcHandler):
    """A generic handler's methods, each wrapped the first time it is asked for."""

    def __init__(self, handlers: grpc.GenericRpcHandler, pipeline: RpcPipeline) -> None:
        self._handlers = handlers
        self._pipeline = pipeline
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method  # type: ignore[attr-defined]
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = self._handlers.service(details)
            if handler is None:
                return None
            wrapped = self._wrapped[method] = self._pipeline.wrap_method(handler, method)
        return wrapped
