"""JSON Schemas of protobuf messages, by the protobuf JSON mapping, for the OpenAPI document.

What a contract says becomes schema: REQUIRED fields (google.api.field_behavior)
are required and, for strings and lists, non-empty; OUTPUT_ONLY and INPUT_ONLY
are readOnly and writeOnly; a field's leading comment is its description, and a
comment that opens with "N to M characters" or "At most N characters" gives the
string's maxLength. Integer types carry their ranges.
"""

from __future__ import annotations

import re
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.rpc import error_details_pb2

from gateway.descriptors import field_behaviors
from gateway.transcoding import is_repeated, message_of

INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}
UINT32 = {"minimum": 0, "maximum": 2**32 - 1}
_LENGTH_RANGE = re.compile(r"(\d+) to (\d+) characters\b")
_LENGTH_AT_MOST = re.compile(r"at most (\d+) characters\b", re.IGNORECASE)
# The google.rpc details an error body may carry, each as an item of `details` with its `@type`.
ERROR_DETAIL_TYPES = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.PreconditionFailure,
)
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32", **INT32},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32", **INT32},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32", **INT32},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", **UINT32},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", **UINT32},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated field paths."},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.Int32Value": {"type": ["integer", "null"]},
    "google.protobuf.Int64Value": {"type": ["string", "null"], "format": "int64"},
    "google.protobuf.DoubleValue": {"type": ["number", "null"]},
}


def length_bounds(comment: str) -> dict[str, int]:
    """maxLength from a comment that opens with the string's length, as our contracts write it.
    Only the upper bound: a field left out is "" in an answer, whatever its lower bound when set
    (REQUIRED fields get theirs from field_behavior)."""
    found = _LENGTH_RANGE.match(comment) or _LENGTH_AT_MOST.match(comment)
    return {"maxLength": int(found.group(found.lastindex or 1))} if found else {}


def is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and bool(message_of(field).GetOptions().map_entry)


def is_required(field: FieldDescriptor) -> bool:
    return field_behavior_pb2.REQUIRED in field_behaviors(field)


class Schemas:
    def __init__(self, field_comments: dict[str, str], *, json_names: bool = False) -> None:
        self.components: dict[str, Any] = {}
        self._comments = field_comments
        # Property names as the gateway writes them (GATEWAY_JSON_NAMES): proto names by default.
        self._json_names = json_names
        self.components["Error"] = self._error()

    def _name(self, field: FieldDescriptor) -> str:
        return field.json_name if self._json_names else field.name

    def _error(self) -> dict[str, Any]:
        """The error body, with the google.rpc details it may carry, each as protobuf
        JSON writes an Any: the message's fields beside its `@type`."""
        details: list[dict[str, Any]] = []
        for detail_type in ERROR_DETAIL_TYPES:
            descriptor = detail_type.DESCRIPTOR
            schema = self.object(descriptor, skip=set())
            type_url = f"type.googleapis.com/{descriptor.full_name}"
            schema["properties"] = {"@type": {"const": type_url}, **schema["properties"]}
            schema["required"] = ["@type", *schema.get("required", [])]
            self.components[f"Error.{descriptor.name}"] = schema
            details.append({"$ref": f"#/components/schemas/Error.{descriptor.name}"})
        other = {
            "type": "object",
            "description": "A detail of another type (a contract's own), or one not known to the gateway.",
            "required": ["@type"],
            "properties": {"@type": {"type": "string"}},
            "additionalProperties": True,
        }
        return {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "integer", "description": "The gRPC status code."},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"anyOf": [*details, other]}},
            },
        }

    def message(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in WELL_KNOWN:
            return dict(WELL_KNOWN[descriptor.full_name])
        if descriptor.full_name not in self.components:
            self.components[descriptor.full_name] = {}  # placeholder: recursion stops here
            self.components[descriptor.full_name] = self.object(descriptor, skip=set())
        return {"$ref": f"#/components/schemas/{descriptor.full_name}"}

    def object(self, descriptor: Descriptor, *, skip: set[str]) -> dict[str, Any]:
        """The message as a JSON object; REQUIRED fields listed as required (the
        services refuse them empty), OUTPUT_ONLY read-only, INPUT_ONLY write-only."""
        fields = [field for field in descriptor.fields if field.name not in skip]
        schema: dict[str, Any] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {self._name(field): self.documented(field) for field in fields},
        }
        required = [self._name(field) for field in fields if is_required(field)]
        if required:
            schema["required"] = required
        return schema

    def documented(self, field: FieldDescriptor) -> dict[str, Any]:
        schema = self.field(field)
        behaviors = field_behaviors(field)
        extra: dict[str, Any] = {}
        comment = self._comments.get(field.full_name)
        if comment:
            extra["description"] = comment
            if field.type == FieldDescriptor.TYPE_STRING and not is_repeated(field):
                extra.update(length_bounds(comment))
        if field_behavior_pb2.OUTPUT_ONLY in behaviors:
            extra["readOnly"] = True
        if field_behavior_pb2.INPUT_ONLY in behaviors:
            extra["writeOnly"] = True
        if field_behavior_pb2.REQUIRED in behaviors and is_repeated(field):
            # The services refuse an empty list or map.
            extra["minProperties" if is_map(field) else "minItems"] = 1
        elif field_behavior_pb2.REQUIRED in behaviors and field.type == FieldDescriptor.TYPE_STRING:
            extra["minLength"] = max(1, extra.get("minLength", 1))  # the services refuse an empty (or blank) value
        if not extra:
            return schema
        # Beside a $ref, keywords apply too in OpenAPI 3.1 (JSON Schema 2020-12).
        return {**schema, **extra}

    def enum(self, descriptor: EnumDescriptor) -> dict[str, Any]:
        return {"type": "string", "enum": [value.name for value in descriptor.values]}

    def single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message(message_of(field))
        if field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            return self.enum(field.enum_type)
        return dict(_SCALARS[field.type])

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        if is_map(field):
            return {"type": "object", "additionalProperties": self.single(message_of(field).fields_by_name["value"])}
        if is_repeated(field):
            return {"type": "array", "items": self.single(field)}
        return self.single(field)
