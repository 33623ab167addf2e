"""OpenAPI 3.1, generated from the same descriptors the routes come from.

Each binding is an operation (an RPC's additional bindings too, with numbered
operationIds as grpc-gateway's generator numbers them: `TicketService_Lookup`,
`TicketService_Lookup2`). `security` follows the RPC's access: none for public
ones, optional for public ones that take a token when sent, a bearer token for
the rest, whether the rule comes from the contract or from GATEWAY_ACCESS_POLICY.
A variable spanning several segments (`{name=tickets/*}`) is written as its
segments (`/v1/tickets/{ticket}`), so two such routes never share a path.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.descriptors import Binding, Contracts, Rpc
from gateway.http_body import is_http_body
from gateway.openapi_schemas import WELL_KNOWN, Schemas, is_required
from gateway.templates import PathTemplate
from gateway.transcoding import is_repeated, message_of

log = logging.getLogger("tenantry.gateway")

_VARIABLE = re.compile(r"\{([^}=]*)(?:=([^}]*))?\}")
# An access token, or an API key (which `Authorization: Bearer tnt_...` also carries): either one.
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyAuth": []}]
NATIVE_OPERATIONS = {"/health": "health", "/api/v1/system/info": "api_v1_system_info"}


def _query_parameters(
    schemas: Schemas, descriptor: Descriptor, prefix: str, skip: set[str], depth: int = 0
) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for field in descriptor.fields:
        name = prefix + field.name
        if name in skip:
            continue
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and message_of(field).full_name not in WELL_KNOWN and not is_repeated(field):
            if depth < 3:
                parameters += _query_parameters(schemas, message_of(field), name + ".", skip, depth + 1)
            continue
        if is_message and message_of(field).full_name not in WELL_KNOWN:
            continue
        parameters.append(
            {"name": name, "in": "query", "required": not prefix and is_required(field), "schema": schemas.field(field)}
        )
    return parameters


def openapi_path(template: PathTemplate) -> tuple[str, list[dict[str, Any]]]:
    """The template as an OpenAPI path and its path parameters. A variable of one
    segment keeps its field path as its name; one of several is written out:
    literals as they are, each '*' as a parameter named after the literal before
    it, a '**' as the field path (a value that may hold '/', sent as %2F)."""
    parameters: list[dict[str, Any]] = []
    taken: set[str] = set()

    def parameter(name: str, description: str) -> str:
        unique, number = name, 2
        while unique in taken:
            unique, number = f"{name}{number}", number + 1
        taken.add(unique)
        parameters.append({"name": unique, "in": "path", "required": True, "schema": {"type": "string"}})
        if description:
            parameters[-1]["description"] = description
        return "{" + unique + "}"

    def written_out(found: re.Match[str]) -> str:
        field_path, sub = found.group(1), found.group(2) or "*"
        if sub == "*":
            return parameter(field_path, "")
        parts, previous = [], field_path
        for part in sub.split("/"):
            if part == "*":
                parts.append(parameter(_singular(previous), f"A segment of `{field_path}` ({sub})."))
            elif part == "**":
                parts.append(parameter(field_path, f"The rest of `{field_path}` ({sub}); may hold '/'."))
            else:
                parts.append(part)
                previous = part
        return "/".join(parts)

    return _VARIABLE.sub(written_out, template.source), parameters


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 1 and word.endswith("s") else f"{word}_id"


def _security(rpc: Rpc) -> list[dict[str, list[str]]]:
    if not rpc.public:
        return BEARER
    # {}: no credentials at all, or else a bearer token (verified, naming the caller).
    return [{}, *BEARER] if rpc.accepts_bearer else []


def _access_note(rpc: Rpc) -> str:
    source = " (GATEWAY_ACCESS_POLICY)" if rpc.by_policy else ""
    if rpc.public:
        return f"Access: public{source}."
    needs = f"; permissions: {', '.join(rpc.permissions)}" if rpc.permissions else ""
    return f"Access: a bearer access token{needs}{source}."


def _operation(schemas: Schemas, binding: Binding, operation_id: str) -> tuple[str, dict[str, Any]]:
    rpc = binding.rpc
    request = rpc.request_class.DESCRIPTOR
    path_fields = {".".join(variable.field_path) for variable in binding.template.variables}
    path, parameters = openapi_path(binding.template)
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": rpc.method.name,
        "description": "\n\n".join(filter(None, [rpc.comment, _access_note(rpc)])),
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
    if is_http_body(response):
        # The chunks' bytes are the body, of whatever type the first one names (a CSV or NDJSON file).
        content = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    elif rpc.server_streaming:
        # One message per line; a failure after the first ends the stream with {"error": Error}.
        content = {
            "application/x-ndjson": {"schema": body_schema},
            "text/event-stream": {"schema": {"type": "string", "description": "Server-Sent Events (Accept)."}},
        }
    else:
        content = {"application/json": {"schema": body_schema}}
    error = {
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    operation["responses"] = {"200": {"description": "OK", "content": content}, "default": error}
    operation["security"] = _security(rpc)
    return path, operation


def operation_ids(bindings: list[Binding]) -> list[str]:
    """`Service_Method`, or with its package when two loaded services share a
    name; an RPC's further bindings numbered from 2, skipping any id in use."""
    short_names = Counter(service.rsplit(".", 1)[-1] for service in {binding.rpc.service for binding in bindings})
    bases = []
    for binding in bindings:
        service = binding.rpc.method.containing_service
        prefix = service.name if short_names[service.name] == 1 else service.full_name.replace(".", "_")
        bases.append(f"{prefix}_{binding.rpc.method.name}")
    # An RPC's own id (an RPC named Lookup2 beside Lookup) is never given to another's binding.
    reserved = set(bases)
    used = set(NATIVE_OPERATIONS.values())
    ids = []
    for base in bases:
        operation_id, number = base, 2
        while operation_id in used or (operation_id != base and operation_id in reserved):
            operation_id, number = f"{base}{number}", number + 1
        used.add(operation_id)
        ids.append(operation_id)
    return ids


def openapi_document(contracts: Contracts, *, title: str, version: str, json_names: bool = False) -> dict[str, Any]:
    schemas = Schemas(contracts.field_comments, json_names=json_names)
    paths: dict[str, dict[str, Any]] = {}
    # Paths that differ only by their parameters' names are one path to OpenAPI.
    described: dict[tuple[str, str], Binding] = {}
    for binding, operation_id in zip(contracts.bindings, operation_ids(contracts.bindings), strict=True):
        path, operation = _operation(schemas, binding, operation_id)
        key = (re.sub(r"\{[^}]*\}", "{}", path), binding.http_method)
        if key in described:
            log.warning(
                "a route is left out of the OpenAPI document: its path is another route's",
                extra={"route": f"{binding.http_method} {binding.template.source}", "rpc": binding.rpc.path},
            )
            continue
        described[key] = binding
        paths.setdefault(path, {})[binding.http_method.lower()] = operation
    status_schema = {"type": "object", "additionalProperties": True}
    for path, summary in (
        ("/health", "Health of every upstream and its database"),
        ("/api/v1/system/info", "Name, version and services"),
    ):
        paths[path] = {
            "get": {
                "operationId": NATIVE_OPERATIONS[path],
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
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
        },
        "security": BEARER,
    }
