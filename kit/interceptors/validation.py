"""Refuses malformed requests before any handler runs, for every RPC of every service.

What no service may ever store or act on is checked here once, by walking the
request message, instead of in each handler: strings holding NUL (PostgreSQL
text cannot), numbers that are NaN or infinite (JSON cannot hold them),
Timestamps outside 0001-01-01..9999-12-31, Struct values nested deeper than
MAX_VALUE_DEPTH, and fields the contract marks `(google.api.field_behavior) =
REQUIRED` left empty. Bytes that do not decode as the request message are
refused too, rather than ending as INTERNAL. Each refusal is INVALID_ARGUMENT
naming the field's path, e.g. `owner.full_name: must not contain NUL characters`.

It runs on every request, 500-event audit batches included, so it is kept cheap:
each message type gets a plan once (only the fields that can hold a problem or
are REQUIRED; a message type that can hold none is never entered), a message's
strings are searched for NUL in one go, and a field's path is assembled only
when a problem is found (`python -m benchmarks.validation` prints the cost).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from operator import attrgetter
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

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
    try:
        _check_message(message)
    except _Problem as problem:
        if message.DESCRIPTOR.full_name in _VALUE_TREE:
            problem.inside("request")
        raise InvalidArgument(problem.path(), problem.problem) from None


@cache
def required_fields(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    return tuple(
        field
        for field in descriptor.fields
        if field_behavior_pb2.REQUIRED in field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    )


class _Problem(Exception):
    """A refusal on its way out of the walk. Each level it leaves adds its own
    part of the field's path, so no path is ever built for a request that passes."""

    def __init__(self, problem: str, segment: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.segments = [segment] if segment else []

    def inside(self, segment: str) -> _Problem:
        self.segments.append(segment)
        return self

    def path(self) -> str:
        path = "".join(reversed(self.segments))
        return path[1:] if path.startswith(".") else path


# What a plan does with a field.
_PLAIN, _STRING, _FLOAT, _MESSAGE, _STRINGS, _FLOATS, _MESSAGES, _MAP = range(8)
_KIND_OF_REPEATED = {_STRING: _STRINGS, _FLOAT: _FLOATS, _MESSAGE: _MESSAGES}
_KIND_OF_ITEM = {repeated: single for single, repeated in _KIND_OF_REPEATED.items()}


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    kind: int
    required: bool
    # Added to the path of a problem found in it: ".name".
    segment: str
    # For a map: whether its keys are strings, and what its values are (a kind).
    string_keys: bool = False
    value_kind: int = _PLAIN
    # For a message: how to check it (straight to the Timestamp or Struct check when it is one).
    check: Callable[[Any], None] | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to look at in one message type, worked out once per type."""

    # Timestamp, Duration and the Struct tree are checked as a whole.
    whole: Callable[[Any], None] | None
    # Every field that can hold a problem or is REQUIRED, in declaration order.
    entries: tuple[_Entry, ...]
    # The singular strings, fetched in one call and searched for NUL at once ...
    strings: Callable[[Any], tuple[str, ...]] | None
    # ... so the walk of a message whose strings are clean skips them.
    rest: tuple[_Entry, ...]


_PLANS: dict[Descriptor, _Plan] = {}


def _plan(descriptor: Descriptor) -> _Plan:
    plan = _PLANS.get(descriptor)
    if plan is None:
        plan = _PLANS[descriptor] = _make_plan(descriptor)
    return plan


def _make_plan(descriptor: Descriptor) -> _Plan:
    whole = _WHOLE.get(descriptor.full_name)
    if whole is not None:
        return _Plan(whole, (), None, ())
    required = required_fields(descriptor)
    entries = []
    for field in descriptor.fields:
        entry = _entry(field, required=field in required)
        if entry is not None:
            entries.append(entry)
    strings = [entry.name for entry in entries if entry.kind == _STRING]
    rest = tuple(entry for entry in entries if entry.kind != _STRING or entry.required)
    return _Plan(None, tuple(entries), _getter(strings), rest)


def _getter(names: list[str]) -> Callable[[Any], tuple[str, ...]] | None:
    if not names:
        return None
    if len(names) == 1:
        name = names[0]
        return lambda message: (getattr(message, name),)
    return attrgetter(*names)


def _entry(field: FieldDescriptor, *, required: bool) -> _Entry | None:
    segment = "." + field.name
    entry_type = field.message_type
    if entry_type is not None and entry_type.GetOptions().map_entry:
        string_keys = entry_type.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING
        value_kind = _kind(entry_type.fields_by_name["value"])
        if string_keys or value_kind != _PLAIN or required:
            return _Entry(field.name, _MAP, required, segment, string_keys, value_kind)
        return None
    kind = _kind(field)
    if kind != _PLAIN and field.is_repeated:
        kind = _KIND_OF_REPEATED[kind]
    elif required and entry_type is not None and not field.is_repeated:
        kind = _MESSAGE  # its presence is what is checked
    if kind == _PLAIN and not required:
        return None
    check = _WHOLE.get(entry_type.full_name, _check_message) if entry_type is not None else None
    return _Entry(field.name, kind, required, segment, check=check)


def _kind(field: FieldDescriptor) -> int:
    """What a single value of the field needs: _PLAIN when nothing it can hold is ever refused."""
    if field.type == FieldDescriptor.TYPE_STRING:
        return _STRING
    if field.cpp_type in _FLOATING:
        return _FLOAT
    if field.message_type is not None and _may_refuse(field.message_type):
        return _MESSAGE
    return _PLAIN


@cache
def _may_refuse(descriptor: Descriptor) -> bool:
    return _may_refuse_within(descriptor, frozenset())


def _may_refuse_within(descriptor: Descriptor, visiting: frozenset[str]) -> bool:
    if descriptor.full_name in _WHOLE or required_fields(descriptor):
        return True
    visiting = visiting | {descriptor.full_name}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING or field.cpp_type in _FLOATING:
            return True
        nested = field.message_type
        # A type that contains itself may hold anything at some depth: checked.
        if nested is not None and (nested.full_name in visiting or _may_refuse_within(nested, visiting)):
            return True
    return False


def _check_message(message: Any) -> None:
    plan = _plan(message.DESCRIPTOR)
    if plan.whole is not None:
        plan.whole(message)
    elif plan.strings is not None and "\x00" in "".join(plan.strings(message)):
        _walk(message, plan.entries)  # raises the first problem in declaration order
    else:
        _walk(message, plan.rest)


def _walk(message: Any, entries: tuple[_Entry, ...]) -> None:
    for entry in entries:
        try:
            # A message field, the commonest entry, is checked here rather than in a call of its own.
            if entry.kind != _MESSAGE:
                _check_entry(message, entry)
            elif message.HasField(entry.name):
                entry.check(getattr(message, entry.name))  # type: ignore[misc]
            elif entry.required:
                raise _Problem("is required")
        except _Problem as problem:
            raise problem.inside(entry.segment) from None


def _check_entry(message: Any, entry: _Entry) -> None:
    """Any field but a singular message."""
    kind = entry.kind
    value = getattr(message, entry.name)
    if entry.required and not (value.strip() if isinstance(value, str) else value):
        raise _Problem("is required")
    if kind in _KIND_OF_ITEM:
        if kind != _STRINGS or "\x00" in "".join(value):
            for index, item in enumerate(value):
                try:
                    _check_single(_KIND_OF_ITEM[kind], item)
                except _Problem as problem:
                    raise problem.inside(f"[{index}]") from None
    elif kind == _MAP:
        _check_map(entry, value)
    else:
        _check_single(kind, value)


def _check_single(kind: int, value: Any) -> None:
    if kind == _STRING:
        if "\x00" in value:
            raise _Problem("must not contain NUL characters")
    elif kind == _FLOAT:
        if not math.isfinite(value):
            raise _Problem("must be a finite number")
    elif kind == _MESSAGE:
        _check_message(value)


def _check_map(entry: _Entry, value: Any) -> None:
    for key in value:
        if entry.string_keys and "\x00" in key:
            raise _Problem("must not contain NUL characters", " (a key)")
        try:
            _check_single(entry.value_kind, value[key])
        except _Problem as problem:
            raise problem.inside(f'["{key}"]') from None


def _check_timestamp(message: Any) -> None:
    if not MIN_TIMESTAMP_SECONDS <= message.seconds <= MAX_TIMESTAMP_SECONDS:
        raise _Problem("must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    if not 0 <= message.nanos <= MAX_NANOS:
        raise _Problem("nanos must be between 0 and 999999999")


def _check_duration(message: Any) -> None:
    if abs(message.seconds) > _MAX_DURATION_SECONDS or abs(message.nanos) > MAX_NANOS:
        raise _Problem("is out of range")
    if (message.seconds > 0 and message.nanos < 0) or (message.seconds < 0 and message.nanos > 0):
        raise _Problem("seconds and nanos must have the same sign")


def _check_value_tree(message: Any) -> None:
    """Struct, ListValue and Value: the JSON-like tree, bounded in depth."""
    descriptor = message.DESCRIPTOR
    if descriptor is _STRUCT:
        _check_struct(message, 0)
    elif descriptor is _LIST_VALUE:
        _check_list(message, 0)
    else:
        _check_value(message, 0)


def _too_deep() -> _Problem:
    return _Problem(f"must not nest deeper than {MAX_VALUE_DEPTH} levels")


def _check_struct(struct: Any, depth: int) -> None:
    if depth > MAX_VALUE_DEPTH:
        raise _too_deep()
    fields = struct.fields
    # By key, not items(): a map's items() is collections.abc's, in Python, several times slower.
    for key in fields:
        if "\x00" in key:
            raise _Problem("must not contain NUL characters", " (a key)")
        try:
            _check_value(fields[key], depth + 1)
        except _Problem as problem:
            raise problem.inside("." + key) from None


def _check_list(values: Any, depth: int) -> None:
    if depth > MAX_VALUE_DEPTH:
        raise _too_deep()
    for index, item in enumerate(values.values):
        try:
            _check_value(item, depth + 1)
        except _Problem as problem:
            raise problem.inside(f"[{index}]") from None


def _check_value(value: Any, depth: int) -> None:
    if depth > MAX_VALUE_DEPTH:
        raise _too_deep()
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        if "\x00" in value.string_value:
            raise _Problem("must not contain NUL characters")
    elif kind == "number_value":
        if not math.isfinite(value.number_value):
            raise _Problem("must be a finite number (not NaN or Infinity)")
    elif kind == "struct_value":
        _check_struct(value.struct_value, depth)
    elif kind == "list_value":
        _check_list(value.list_value, depth)


_STRUCT = struct_pb2.Struct.DESCRIPTOR
_LIST_VALUE = struct_pb2.ListValue.DESCRIPTOR
_VALUE_TREE = (_STRUCT.full_name, _LIST_VALUE.full_name, struct_pb2.Value.DESCRIPTOR.full_name)
_WHOLE: dict[str, Callable[[Any], None]] = {
    "google.protobuf.Timestamp": _check_timestamp,
    "google.protobuf.Duration": _check_duration,
    **dict.fromkeys(_VALUE_TREE, _check_value_tree),
}


class Undecodable:
    """Stands in for a request whose bytes are not the method's message."""


def lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:
            return Undecodable()

    return deserialize


def checked_request(request: Any) -> Any:
    """The request, if it decoded and passes check_request; else InvalidArgument."""
    if isinstance(request, Undecodable):
        raise InvalidArgument("request", "is not a valid message of this method (or nests too deeply)")
    check_request(request)
    return request
