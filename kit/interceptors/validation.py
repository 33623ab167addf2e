"""Refuses malformed requests before any handler runs, for every RPC of every service.

What no service may ever store or act on is checked here once, by walking the
request message, instead of in each handler: strings holding NUL (PostgreSQL
text cannot), numbers that are NaN or infinite (JSON cannot hold them),
Timestamps outside 0001-01-01..9999-12-31, Struct values nested deeper than
MAX_VALUE_DEPTH, and fields the contract marks `(google.api.field_behavior) =
REQUIRED` left empty. Bytes that do not decode as the request message are
refused too, rather than ending as INTERNAL. Each refusal is INVALID_ARGUMENT
naming the field's path, e.g. `owner.full_name: must not contain NUL characters`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import cache
from typing import Any

import grpc
from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kit.access import is_infrastructure
from kit.errors import InvalidArgument

# Deep enough for any real configuration, shallow enough that the decoder's own
# recursion limit (100 message levels; a JSON level is three) is never reached.
MAX_VALUE_DEPTH = 20
# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799
MAX_NANOS = 999_999_999
_MAX_DURATION_SECONDS = 315_576_000_000
_FLOATING = (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT)


def check_request(message: Message) -> None:
    """Raises InvalidArgument for the first problem found in the message."""
    _check_message(message, "")


@cache
def required_fields(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    return tuple(
        field
        for field in descriptor.fields
        if field_behavior_pb2.REQUIRED in field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_message(message: Message, path: str) -> None:
    descriptor = message.DESCRIPTOR
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        _check_timestamp(message, path)
        return
    if name == "google.protobuf.Duration":
        _check_duration(message, path)
        return
    if name in ("google.protobuf.Struct", "google.protobuf.ListValue", "google.protobuf.Value"):
        _check_value_tree(message, path or "request", 0)
        return
    required = required_fields(descriptor)
    present = {field.number: (field, value) for field, value in message.ListFields()}
    # In declaration order, so that the first problem a client reads is the first field's.
    for declared in descriptor.fields:
        if declared in required and not _is_set(message, declared):
            raise InvalidArgument(_join(path, declared.name), "is required")
        if declared.number in present:
            field, value = present[declared.number]
            _check_field(field, value, _join(path, field.name))


def _is_set(message: Message, field: FieldDescriptor) -> bool:
    value = getattr(message, field.name)
    if field.is_repeated:
        return len(value) > 0
    if field.message_type is not None:
        return message.HasField(field.name)
    if isinstance(value, str):
        return bool(value.strip())
    return bool(value)


def _check_field(field: FieldDescriptor, value: Any, path: str) -> None:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        value_field = entry.fields_by_name["value"]
        for key, item in value.items():
            if isinstance(key, str):
                _check_string(key, f"{path} (a key)")
            _check_single(value_field, item, f'{path}["{key}"]')
        return
    if field.is_repeated:
        for index, item in enumerate(value):
            _check_single(field, item, f"{path}[{index}]")
        return
    _check_single(field, value, path)


def _check_single(field: FieldDescriptor, value: Any, path: str) -> None:
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        _check_message(value, path)
    elif field.cpp_type == FieldDescriptor.CPPTYPE_STRING and field.type == FieldDescriptor.TYPE_STRING:
        _check_string(value, path)
    elif field.cpp_type in _FLOATING and not math.isfinite(value):
        raise InvalidArgument(path, "must be a finite number")


def _check_string(value: str, path: str) -> None:
    if "\x00" in value:
        raise InvalidArgument(path, "must not contain NUL characters")


def _check_timestamp(message: Any, path: str) -> None:
    if not MIN_TIMESTAMP_SECONDS <= message.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidArgument(path, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    if not 0 <= message.nanos <= MAX_NANOS:
        raise InvalidArgument(path, "nanos must be between 0 and 999999999")


def _check_duration(message: Any, path: str) -> None:
    if abs(message.seconds) > _MAX_DURATION_SECONDS or abs(message.nanos) > MAX_NANOS:
        raise InvalidArgument(path, "is out of range")
    if (message.seconds > 0 and message.nanos < 0) or (message.seconds < 0 and message.nanos > 0):
        raise InvalidArgument(path, "seconds and nanos must have the same sign")


def _check_value_tree(message: Any, path: str, depth: int) -> None:
    """Struct, ListValue and Value: the JSON-like tree, bounded in depth."""
    if depth > MAX_VALUE_DEPTH:
        raise InvalidArgument(path, f"must not nest deeper than {MAX_VALUE_DEPTH} levels")
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Struct":
        for key, item in message.fields.items():
            _check_string(key, f"{path} (a key)")
            _check_value_tree(item, _join(path, key), depth + 1)
    elif name == "google.protobuf.ListValue":
        for index, item in enumerate(message.values):
            _check_value_tree(item, f"{path}[{index}]", depth + 1)
    else:
        kind = message.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(message.number_value):
            raise InvalidArgument(path, "must be a finite number (not NaN or Infinity)")
        if kind == "string_value":
            _check_string(message.string_value, path)
        elif kind in ("struct_value", "list_value"):
            _check_value_tree(getattr(message, kind), path, depth)


class Undecodable:
    """Stands in for a request whose bytes are not the method's message."""


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:
            return Undecodable()

    return deserialize


def _checked(request: Any) -> None:
    if isinstance(request, Undecodable):
        raise InvalidArgument("request", "is not a valid message of this method (or nests too deeply)")
    check_request(request)


class ValidationInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or is_infrastructure(details.method):  # type: ignore[attr-defined]
            return handler
        if handler.unary_unary:
            behaviour = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                _checked(request)
                return await behaviour(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            streaming = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                _checked(request)
                if inspect.isasyncgenfunction(streaming):
                    async for response in streaming(request, context):
                        yield response
                else:
                    await streaming(request, context)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler
