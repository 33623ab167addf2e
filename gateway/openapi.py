"""OpenAPI 3.1, generated from the same descriptors the routes come from."""

from __future__ import annotations

from typing import Any

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway.descriptors import Binding, Contracts, field_behaviors
from gateway.http_body import is_http_body
from gateway.transcoding import is_repeated, message_of

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
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
ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {"type": "integer", "description": "The gRPC status code."},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}


def is_required(field: FieldDescriptor) -> bool:
    return field_behavior_pb2.REQUIRED in field_behaviors(field)


class _Schemas:
    def __init__(self, field_comments: dict[str, str]) -> None:
        self.components: dict[str, Any] = {"Error": ERROR_SCHEMA}
        self._comments = field_comments

    def message(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
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
            "properties": {field.name: self.documented(field) for field in fields},
        }
        required = [field.name for field in fields if is_required(field)]
        if required:
            schema["required"] = required
        return schema

    def documented(self, field: FieldDescriptor) -> dict[str, Any]:
        schema = self.field(field)
        behaviors = field_behaviors(field)
        extra: dict[str, Any] = {}
        if field.full_name in self._comments:
            extra["description"] = self._comments[field.full_name]
        if field_behavior_pb2.OUTPUT_ONLY in behaviors:
            extra["readOnly"] = True
        if field_behavior_pb2.INPUT_ONLY in behaviors:
            extra["writeOnly"] = True
        if field_behavior_pb2.REQUIRED in behaviors and field.type == FieldDescriptor.TYPE_STRING:
            extra["minLength"] = 1  # the services refuse an empty (or blank) value
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
        if field.type == FieldDescriptor.TYPE_MESSAGE and message_of(field).GetOptions().map_entry:
            return {"type": "object", "additionalProperties": self.single(message_of(field).fields_by_name["value"])}
        if is_repeated(field):
            return {"type": "array", "items": self.single(field)}
        return self.single(field)


def _query_parameters(
    schemas: _Schemas, descriptor: Descriptor, prefix: str, skip: set[str], depth: int = 0
) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for field in descriptor.fields:
        name = prefix + field.name
        if name in skip:
            continue
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and message_of(field).full_name not in _WELL_KNOWN and not is_repeated(field):
            if depth < 3:
                parameters += _query_parameters(schemas, message_of(field), name + ".", skip, depth + 1)
            continue
        if is_message and message_of(field).full_name not in _WELL_KNOWN:
            continue
        parameters.append(
            {"name": name, "in": "query", "required": not prefix and is_required(field), "schema": schemas.field(field)}
        )
    return parameters


def _operation(schemas: _Schemas, binding: Binding) -> dict[str, Any]:
    rpc = binding.rpc
    request = rpc.request_class.DESCRIPTOR
    path_fields = {".".join(variable.field_path) for variable in binding.template.variables}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in sorted(path_fields)
    ]
    operation: dict[str, Any] = {
        "operationId": f"{rpc.method.containing_service.name}_{rpc.method.name}",
        "summary": rpc.method.name,
        "description": rpc.comment,
        "tags": [rpc.method.containing_service.full_name],
    }
    if binding.body == "*":
        # Fields bound to the path are not the body's to give.
        top_path_fields = {name for name in path_fields if "." not in name}
        body = schemas.object(request, skip=top_path_fields) if top_path_fields else schemas.message(request)
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    elif binding.body:
        field = request.fields_by_name[binding.body]
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schemas.field(field)}}}
        parameters += _query_parameters(schemas, request, "", path_fields | {binding.body})
    else:
        parameters += _query_parameters(schemas, request, "", path_fields)
    operation["parameters"] = parameters
    response = rpc.response_class.DESCRIPTOR
    body_schema = (
        schemas.field(response.fields_by_name[binding.response_body])
        if binding.response_body
        else schemas.message(response)
    )
    media = "application/x-ndjson" if rpc.server_streaming else "application/json"
    if is_http_body(response):
        # The chunks' bytes are the body, of whatever type the first one names (a CSV or NDJSON file).
        media, body_schema = "*/*", {"type": "string", "format": "binary"}
    error = {
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    operation["responses"] = {
        "200": {"description": "OK", "content": {media: {"schema": body_schema}}},
        "default": error,
    }
    operation["security"] = [] if rpc.public else [{"bearerAuth": []}]
    return operation


def openapi_document(contracts: Contracts, *, title: str, version: str) -> dict[str, Any]:
    schemas = _Schemas(contracts.field_comments)
    paths: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for binding in contracts.bindings:
        operation = _operation(schemas, binding)
        # An RPC's additional bindings get numbered ids (as grpc-gateway's generator does): ids must be unique.
        seen[operation["operationId"]] = count = seen.get(operation["operationId"], 0) + 1
        if count > 1:
            operation["operationId"] += str(count)
        paths.setdefault(binding.template.openapi_path, {})[binding.http_method.lower()] = operation
    status_schema = {"type": "object", "additionalProperties": True}
    for path, summary in (
        ("/health", "Health of every upstream and its database"),
        ("/api/v1/system/info", "Name, version and services"),
    ):
        paths[path] = {
            "get": {
                "operationId": path.strip("/").replace("/", "_").replace(".", "_"),
                "summary": summary,
                "security": [],
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": status_schema}}},
                    "503": {
                        "description": "A component is failing",
                        "content": {"application/json": {"schema": status_schema}},
                    },
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearerAuth": []}],
    }
