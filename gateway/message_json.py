"""Protobuf messages as JSON documents: what json_format.MessageToDict gives, at a fraction of its cost.

Every answer the gateway sends passes through here. json_format works out each field's JSON form again
on every call, through a chain of type tests, and that was about 8% of the gateway's CPU per read. Here
the form is worked out once per message type and field, as a small function, and a call only runs them.

The output is json_format's, key order included (set fields in field-number order, then the fields
without presence that were left at their defaults, in declaration order), with fields by proto name or
json_name and fields without presence always printed. Whatever this module does not handle itself is
json_format's: google.protobuf.Any, and any message that fails here (a Timestamp out of range, an
unknown value of a closed enum), so that json_format raises its own error for it.
tests/gateway/test_message_json.py holds the two to the same output for every message of the contracts.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any, cast

from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal.type_checkers import ToShortestFloat
from google.protobuf.message import Message

from gateway.query_maps import is_map

Convert = Callable[[Any], Any]

_INT64 = {FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64}
_STRING_FORMS = {"google.protobuf.Duration", "google.protobuf.FieldMask"}  # and Timestamp, remembered: _timestamp
_WRAPPERS_FILE = "google/protobuf/wrappers.proto"
_LIST, _MAP = object(), object()  # default markers: a fresh [] or {} for each document


def _has_enum_json_option() -> bool:
    """json_format spells an enum value by its `pb.enumvalue.json` option when that extension is loaded."""
    try:
        descriptor_pool.Default().FindExtensionByName("pb.enumvalue.json")
    except KeyError:
        return False
    return True


class MessageJson:
    """One per field-naming choice; its compiled encoders are kept for the life of the process."""

    def __init__(self, *, json_names: bool = False) -> None:
        self._json_names = json_names
        self._encoders: dict[Descriptor, Convert] = {}
        self._fallback_only = _has_enum_json_option()

    def document(self, message: Message) -> Any:
        """The message as json_format.MessageToDict(always_print_fields_with_no_presence=True) has it."""
        if not self._fallback_only:
            try:
                return self._encoder(cast(Descriptor, message.DESCRIPTOR))(message)
            except Exception:  # json_format decides, and raises its own error if there is one
                pass
        return self._json_format(message)

    def _json_format(self, message: Message) -> Any:
        return json_format.MessageToDict(
            message, preserving_proto_field_name=not self._json_names, always_print_fields_with_no_presence=True
        )

    def _encoder(self, descriptor: Descriptor) -> Convert:
        encoder = self._encoders.get(descriptor)
        if encoder is None:
            encoder = self._encoders[descriptor] = self._compile_message(descriptor)
        return encoder

    def _compile_message(self, descriptor: Descriptor) -> Convert:
        name = descriptor.full_name
        if name == "google.protobuf.Timestamp":
            return _timestamp
        if name in _STRING_FORMS:
            return _to_json_string
        if name == "google.protobuf.Struct":
            return _struct
        if name == "google.protobuf.ListValue":
            return _list_value
        if name == "google.protobuf.Value":
            return _value
        if descriptor.file.name == _WRAPPERS_FILE:
            convert = self._single(descriptor.fields_by_name["value"])
            return lambda message: convert(message.value)
        if name == "google.protobuf.Any":
            return self._json_format
        return self._compile_fields(descriptor)

    def _compile_fields(self, descriptor: Descriptor) -> Convert:
        by_number: dict[int, tuple[str, Convert]] = {}
        defaults: list[tuple[str, Any]] = []
        for field in descriptor.fields:
            name = field.json_name if self._json_names else field.name
            by_number[field.number] = (name, self._field(field))
            if not field.has_presence:
                if is_map(field):
                    defaults.append((name, _MAP))
                elif field.is_repeated:
                    defaults.append((name, _LIST))
                else:
                    defaults.append((name, self._single(field)(field.default_value)))

        def encode(message: Message) -> dict[str, Any]:
            document: dict[str, Any] = {}
            for field, value in message.ListFields():
                # An extension is not in by_number: KeyError, and json_format names it.
                name, convert = by_number[field.number]
                document[name] = convert(value)
            for name, default in defaults:
                if name not in document:
                    document[name] = [] if default is _LIST else {} if default is _MAP else default
            return document

        return encode

    def _field(self, field: FieldDescriptor) -> Convert:
        if is_map(field):
            entry = field.message_type
            assert entry is not None, field.full_name
            key_is_bool = entry.fields_by_name["key"].cpp_type == FieldDescriptor.CPPTYPE_BOOL
            convert_value = self._single(entry.fields_by_name["value"])
            if key_is_bool:
                return lambda entries: {("true" if key else "false"): convert_value(entries[key]) for key in entries}
            return lambda entries: {str(key): convert_value(entries[key]) for key in entries}
        convert = self._single(field)
        if field.is_repeated:
            return lambda values: [convert(value) for value in values]
        return convert

    def _single(self, field: FieldDescriptor) -> Convert:
        """One value of the field (one element, if repeated)."""
        kind = field.cpp_type
        if kind == FieldDescriptor.CPPTYPE_MESSAGE:
            descriptor = field.message_type
            assert descriptor is not None, field.full_name
            # Looked up at call time: a message type may hold itself.
            return lambda message: self._encoder(descriptor)(message)
        if kind == FieldDescriptor.CPPTYPE_ENUM:
            return _enum(field)
        if field.type == FieldDescriptor.TYPE_BYTES:
            return _bytes
        if kind in _INT64:
            return str
        if kind == FieldDescriptor.CPPTYPE_DOUBLE:
            return _double
        if kind == FieldDescriptor.CPPTYPE_FLOAT:
            return _float
        return _same  # string, bool, 32-bit integers: as they are


def _same(value: Any) -> Any:
    return value


def _to_json_string(message: Any) -> str:
    return message.ToJsonString()  # type: ignore[no-any-return]


# A Timestamp's text costs more than the rest of a tenant's fields together, and the same few
# (a tenant's created_at and updated_at) are sent again and again. Emptied when full: bounded memory.
_TIMESTAMP_TEXTS: dict[tuple[int, int], str] = {}
_TIMESTAMP_TEXTS_MAX = 4096


def _timestamp(message: Any) -> str:
    key = (message.seconds, message.nanos)
    text = _TIMESTAMP_TEXTS.get(key)
    if text is None:
        text = message.ToJsonString()  # raises for a time out of range, as json_format does
        if len(_TIMESTAMP_TEXTS) >= _TIMESTAMP_TEXTS_MAX:
            _TIMESTAMP_TEXTS.clear()
        _TIMESTAMP_TEXTS[key] = text
    return text


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("utf-8")


def _double(value: float) -> float | str:
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    if math.isnan(value):
        return "NaN"
    return value


def _float(value: float) -> float | str:
    special = _double(value)
    return special if isinstance(special, str) else ToShortestFloat(value)


def _enum(field: FieldDescriptor) -> Convert:
    enum = field.enum_type
    assert enum is not None, field.full_name
    if enum.full_name == "google.protobuf.NullValue":
        return lambda _value: None
    names = {number: value.name for number, value in enum.values_by_number.items()}
    closed = enum.is_closed

    def convert(number: int) -> Any:
        name = names.get(number)
        if name is not None:
            return name
        if closed:
            raise ValueError("an unknown value of a closed enum")  # json_format says it its way
        return number

    return convert


def _struct(message: Any) -> dict[str, Any]:
    fields = message.fields
    return {key: _value(fields[key]) for key in fields}


def _list_value(message: Any) -> list[Any]:
    return [_value(value) for value in message.values]


def _value(message: Any) -> Any:
    kind = message.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        number = message.number_value
        if math.isinf(number) or math.isnan(number):
            raise ValueError("a non-finite number in a Value")  # json_format refuses it with its own message
        return number
    if kind == "struct_value":
        return _struct(message.struct_value)
    if kind == "list_value":
        return _list_value(message.list_value)
    return getattr(message, kind)  # string_value, bool_value
