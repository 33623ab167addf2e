"""application/x-www-form-urlencoded request bodies (RFC 6749's token endpoint
takes no other), read into the same JSON-like tree as a JSON body.

Clients such as curl -d label JSON bodies as forms too: a body starting with
"{" is JSON whatever its label. Only methods whose whole request is the body (`body: "*"`) take them, and
only top-level scalar or repeated scalar fields: a form has no nesting. A
field given twice is refused unless it is repeated (RFC 6749 §3.2: parameters
must not be included more than once).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.status import GatewayError

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 100


def is_form(content_type: str, body: bytes) -> bool:
    """A form body, by its content type. A JSON object sent as a form (curl -d sends
    every body so) stays JSON: no form field can start with "{", since no field name does."""
    declared = content_type.split(";", 1)[0].strip().lower() == FORM_CONTENT_TYPE
    return declared and not body.lstrip().startswith(b"{")


def _bad(message: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, message)


def form_document(body: bytes, descriptor: Descriptor, body_binding: str) -> dict[str, Any]:
    if body_binding != "*":
        raise _bad(f"this method takes a JSON body, not {FORM_CONTENT_TYPE}")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise _bad("request body is not valid form data: it must be ASCII, percent-encoded UTF-8") from None
    except ValueError:
        raise _bad(f"request body is not valid form data (at most {MAX_FORM_FIELDS} fields)") from None
    document: dict[str, Any] = {}
    for name, value in pairs:
        field = descriptor.fields_by_name.get(name) or next((f for f in descriptor.fields if f.json_name == name), None)
        if field is None:
            raise _bad(f"form field '{name[:100]}': no such field")
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            raise _bad(f"form field '{name}': a message cannot be given in a form")
        scalar = _scalar(field, value, name)
        if field.is_repeated:
            document.setdefault(field.name, []).append(scalar)
        elif field.name in document:
            raise _bad(f"form field '{name}' is given more than once")
        else:
            document[field.name] = scalar
    return document


def _scalar(field: FieldDescriptor, value: str, name: str) -> Any:
    if field.type != FieldDescriptor.TYPE_BOOL:
        return value
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise _bad(f"form field '{name}': expected true or false")
