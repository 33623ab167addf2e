"""Conversions between protobuf values and domain values, with field-named errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from kit.errors import InvalidArgument


def parse_uuid(field: str, value: str, *, required: bool = True) -> UUID | None:
    if not value:
        if required:
            raise InvalidArgument(field, "is required")
        return None
    try:
        return UUID(value)
    except ValueError:
        raise InvalidArgument(field, "must be a UUID") from None


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def from_timestamp(message: timestamp_pb2.Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    json_format.ParseDict(value, message)
    return message


def from_struct(message: struct_pb2.Struct) -> dict[str, Any]:
    """What json_format.MessageToDict gives for a Struct, several times faster:
    audit ingest converts one per event."""
    return {key: _plain(value) for key, value in message.fields.items()}


def _plain(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise ValueError("a Struct number must be finite")
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return from_struct(value.struct_value)
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    return None


Source = TypeVar("Source")
Built = TypeVar("Built")


class BuiltFrom(Generic[Source, Built]):
    """Messages built from objects a cache hands back, by key, at most `limit` (oldest out first).

    A hot read answers from a cached object (a verified principal, a tenant's row)
    and building its message can cost more than the rest of the call. The message
    is built again whenever the object handed back is not the very one it was
    built from, which is what a cache does when what it holds changes."""

    def __init__(self, build: Callable[[Source], Built], *, limit: int) -> None:
        self._build = build
        self._limit = limit
        self._built: dict[Hashable, tuple[Source, Built]] = {}

    def message(self, key: Hashable, source: Source) -> Built:
        remembered = self._built.get(key)
        if remembered is not None and remembered[0] is source:
            return remembered[1]
        built = self._build(source)
        while len(self._built) >= self._limit:
            del self._built[next(iter(self._built))]
        self._built[key] = (source, built)
        return built
