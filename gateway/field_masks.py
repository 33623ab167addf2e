"""FieldMasks at the edge.

- A FieldMask in the query (`?update_mask=display_name,title`) takes proto field names and
  lowerCamelCase alike; each path is normalised to proto names, which is what a FieldMask holds
  (grpc-gateway passes the text on unchanged, so a camelCase path would reach the service as is).
  `update_mask` is checked against the message it updates (AIP-134): the body's field when the
  binding's body is one message field, else the request; a path naming no field is a 400 naming it.
  Other masks (a `read_mask`) address a message the gateway cannot know, so they are only normalised.
- A PATCH or PUT whose request has an `update_mask` and is given none gets one built from the
  body's fields, as grpc-gateway's FieldMaskFromRequestBody does: a leaf per field set, nested
  message fields descended into, repeated and map fields (and well-known types such as Struct,
  which grpc-gateway walks into key by key) named whole. Paths are sorted.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.status import bad_request

FIELD_MASK = "google.protobuf.FieldMask"
UPDATE_MASK = "update_mask"
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UPPER = re.compile(r"[A-Z]")


def find_field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    """The field by proto name, json_name, or the lowerCamelCase of its proto name."""
    found = descriptor.fields_by_name.get(name)
    if found is None:
        found = next((f for f in descriptor.fields if name in (f.json_name, lower_camel(f.name))), None)
    return found


def lower_camel(name: str) -> str:
    """protoc's default json_name: each '_' dropped and the letter after it upper-cased."""
    parts = name.split("_")
    return parts[0] + "".join(part[:1].upper() + part[1:] for part in parts[1:])


def is_field_mask(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.full_name == FIELD_MASK and not field.is_repeated


def has_fields_to_name(field: FieldDescriptor) -> bool:
    """Whether a mask path may go on past this field: a singular message of the contract's own."""
    message = field.message_type
    return (
        message is not None
        and not field.is_repeated
        and not message.GetOptions().map_entry
        and not message.full_name.startswith("google.protobuf.")
    )


def update_target(request: Descriptor, body: str) -> Descriptor:
    """The message an update_mask's paths are relative to."""
    field = request.fields_by_name.get(body) if body and body != "*" else None
    if field is not None and has_fields_to_name(field):
        assert field.message_type is not None
        return field.message_type
    return request


def mask_paths(text: str, target: Descriptor | None, parameter: str) -> list[str]:
    """The paths of a mask written in a query parameter, in proto names, each once."""
    paths: list[str] = []
    for written in text.split(",") if text else ():
        path = written.strip()
        if not path:
            raise bad_request(
                f"query parameter '{parameter}': an empty path (two commas, or one at an end)", field=parameter
            )
        normalised = path if path == "*" else _normalise(path, target, parameter)
        if normalised not in paths:
            paths.append(normalised)
    return paths


def _normalise(path: str, target: Descriptor | None, parameter: str) -> str:
    names: list[str] = []
    current = target
    segments = path.split(".")
    for index, segment in enumerate(segments):
        if not _SEGMENT.fullmatch(segment):
            raise bad_request(f"query parameter '{parameter}': '{path}' is not a field path", field=parameter)
        if current is None:
            # No message to look in: protobuf JSON's rule, each capital letter is '_' and its lower case.
            names.append(segment if "_" in segment else _UPPER.sub(lambda c: "_" + c.group().lower(), segment))
            continue
        field = find_field(current, segment)
        if field is None:
            raise bad_request(
                f"query parameter '{parameter}': '{path}' names no field of {current.full_name}", field=parameter
            )
        names.append(field.name)
        if index < len(segments) - 1:
            if not has_fields_to_name(field):
                raise bad_request(
                    f"query parameter '{parameter}': '{path}': '{field.name}' has no fields to name", field=parameter
                )
            current = field.message_type
    return ".".join(names)


def mask_from_body(document: dict[str, Any], target: Descriptor, skip: set[str]) -> list[str]:
    """The paths a (parsed, valid) JSON body sets, relative to `target`; `skip` top-level fields."""
    paths: set[str] = set()

    def walk(node: dict[str, Any], descriptor: Descriptor, prefix: str) -> None:
        for key, value in node.items():
            field = find_field(descriptor, key)
            if field is None or (not prefix and field.name in skip):
                continue
            path = prefix + field.name
            if has_fields_to_name(field) and isinstance(value, dict) and value:
                assert field.message_type is not None
                walk(value, field.message_type, path + ".")
            else:
                paths.add(path)

    walk(document, target, "")
    return sorted(paths)
