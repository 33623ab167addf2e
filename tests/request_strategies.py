"""Hypothesis strategies for any request message of the contracts, built from its descriptor.

The values lean towards what the request check refuses (NUL in strings and keys,
NaN and infinities, Timestamps past year 9999, deep Struct trees, REQUIRED fields
left out) while staying mostly well-formed, so that a service gets past the check
often enough to refuse what only it can judge.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

# Text a careless or hostile client sends: empty, blank, NUL, look-alikes, long.
texts = st.one_of(
    st.sampled_from(["", " ", "\x00", "a\x00b", "owner", "x" * 300, "\uff21", "tenant.read", "not-a-uuid"]),
    st.text(max_size=12),
    st.uuids().map(str),
)
floats = st.floats(allow_nan=True, allow_infinity=True)
json_values = st.recursive(
    st.none() | st.booleans() | floats | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=12,
)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: texts,
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=8),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: floats,
    FieldDescriptor.TYPE_FLOAT: floats,
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
}
MAX_MESSAGE_DEPTH = 3


def messages(message_class: type[Message], depth: int = 0) -> st.SearchStrategy[Message]:
    """Instances of message_class, each field left out or set to a generated value."""
    fields = st.tuples(*(_field_value(field, depth) for field in message_class.DESCRIPTOR.fields))
    return fields.map(lambda values: _assemble(message_class, values))


def _assemble(message_class: type[Message], values: tuple[Any, ...]) -> Message:
    message = message_class()
    for field, value in zip(message_class.DESCRIPTOR.fields, values, strict=True):
        if value is None:
            continue
        target = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated and field.message_type is not None:
            for item in value:
                target.add().CopyFrom(item)
        elif field.is_repeated:
            target.extend(value)
        elif field.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(message, field.name, value)
    return message


def _field_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        keys = _single(entry.fields_by_name["key"], depth + 1)
        items = _single(entry.fields_by_name["value"], depth + 1)
        return st.none() | st.dictionaries(keys, items, max_size=2)
    single = _single(field, depth)
    if field.is_repeated:
        return st.none() | st.lists(single, max_size=2)
    return st.none() | single


def _single(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return _message_value(field.message_type, depth)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([value.number for value in field.enum_type.values])
    return _SCALARS[field.type]


def _message_value(descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
    name = descriptor.full_name
    if name == "google.protobuf.Struct":
        struct = _class_of(descriptor)  # of the descriptor's own pool: CopyFrom takes no other
        return st.dictionaries(texts, json_values, max_size=3).map(lambda value: _struct(value, struct)) | st.integers(
            1, 30
        ).map(lambda levels: _deep_struct(levels, struct))
    if name == "google.protobuf.Value":
        struct = _class_of(descriptor.fields_by_name["struct_value"].message_type)
        return json_values.map(lambda value: _value(value, struct))
    if name == "google.protobuf.Timestamp" or name == "google.protobuf.Duration":
        seconds = st.one_of(st.integers(0, 4_000_000_000), st.integers(-(2**63), 2**63 - 1))
        nanos = st.one_of(st.integers(0, 999_999_999), st.integers(-(2**31), 2**31 - 1))
        message_class = _class_of(descriptor)
        return st.builds(lambda s, n: message_class(seconds=s, nanos=n), seconds, nanos)
    if name == "google.protobuf.FieldMask":
        return st.lists(texts, max_size=3).map(lambda paths: _class_of(descriptor)(paths=paths))
    if depth >= MAX_MESSAGE_DEPTH:
        return st.just(_class_of(descriptor)())
    return messages(_class_of(descriptor), depth + 1)


def _class_of(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def _struct(value: dict[str, Any], struct_class: type[Message] = struct_pb2.Struct) -> Any:
    struct: Any = struct_class()
    struct.update(value)
    return struct


def _deep_struct(levels: int, struct_class: type[Message] = struct_pb2.Struct) -> Any:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        value = {"a": value}
    return _struct(value, struct_class)


def _value(value: Any, struct_class: type[Message] = struct_pb2.Struct) -> Any:
    holder = _struct({"v": value}, struct_class)
    return holder.fields["v"]
