"""HTTP request to protobuf request, protobuf response to JSON, by the protobuf JSON mapping.

Path variables, query parameters and the body are gathered into one JSON-like
tree and parsed once with json_format, so every type (enums, 64-bit integers,
bytes, Timestamp, Duration, FieldMask, wrappers) follows the standard JSON
forms, and both snake_case and lowerCamelCase names are accepted. Query parameters
add grpc-gateway's map syntax (`labels[key]=value`) and FieldMasks by proto or
lowerCamelCase names (gateway/field_masks.py).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.descriptors import Binding
from gateway.field_masks import (
    UPDATE_MASK,
    find_field,
    is_field_mask,
    mask_from_body,
    mask_paths,
    update_target,
)
from gateway.form_bodies import form_document, is_form
from gateway.message_json import MessageJson
from gateway.query_maps import check_map_key, is_map, map_entry_name
from gateway.status import bad_request

# Message types whose JSON form is a string, so a query parameter can carry them.
_STRING_FORM_TYPES = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
    "google.protobuf.Int32Value",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.FloatValue",
    "google.protobuf.DoubleValue",
    "google.protobuf.BoolValue",
}
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}
# Bounds the parser's recursion (50,000 nested arrays would overflow it), and
# leaves a Struct room to reach the services' own depth check, which names the field.
MAX_JSON_DEPTH = 24
# A string runs to its closing quote, or to the end if unclosed: never fails, so linear.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\[\s\S]?)*+"?')
_JSON_VALUE_TYPES = {"google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _resolve(descriptor: Descriptor, dotted: tuple[str, ...], origin: str) -> list[FieldDescriptor]:
    """The chain of fields a dotted name walks through; 400 naming it if it does not exist."""
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for index, name in enumerate(dotted):
        found = find_field(current, name) if current is not None else None
        if found is None:
            raise bad_request(f"{origin} '{'.'.join(dotted)}': no such field", field=".".join(dotted))
        chain.append(found)
        last = index == len(dotted) - 1
        if not last:
            if found.type != FieldDescriptor.TYPE_MESSAGE or is_repeated(found):
                raise bad_request(
                    f"{origin} '{'.'.join(dotted)}': '{name}' is not a message field", field=".".join(dotted)
                )
            current = message_of(found)
    return chain


def is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def message_of(field: FieldDescriptor) -> Descriptor:
    """The message type of a message field (never None for TYPE_MESSAGE)."""
    assert field.message_type is not None, field.full_name
    return field.message_type


def _scalar(field: FieldDescriptor, value: str, name: str) -> Any:
    """A string from a URL, in the JSON form json_format expects for the field."""
    if field.type == FieldDescriptor.TYPE_BOOL or (
        field.type == FieldDescriptor.TYPE_MESSAGE and message_of(field).full_name == "google.protobuf.BoolValue"
    ):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise bad_request(f"parameter '{name}': expected true or false", field=name)
    if field.type == FieldDescriptor.TYPE_MESSAGE and message_of(field).full_name not in _STRING_FORM_TYPES:
        raise bad_request(
            f"parameter '{name}': a message cannot be given as one value; name its fields (a.b=1)", field=name
        )
    if field.type == FieldDescriptor.TYPE_ENUM and value.lstrip("-").isdigit():
        return int(value)
    return value


def _assign(
    tree: dict[str, Any], chain: list[FieldDescriptor], values: list[str], name: str, *, overwrite: bool
) -> None:
    node = tree
    for field in chain[:-1]:
        child = node.get(field.name)
        if child is None:
            child = node[field.name] = {}
        elif not isinstance(child, dict):
            raise bad_request(f"parameter '{name}': conflicts with a value given elsewhere", field=name)
        node = child
    field = chain[-1]
    if is_repeated(field):
        node[field.name] = [_scalar(field, value, name) for value in values]
    else:
        if len(values) > 1:
            raise bad_request(f"query parameter '{name}' is given more than once", field=name)
        if field.name in node and not overwrite:
            raise bad_request(f"parameter '{name}' is given both in the query and the body", field=name)
        node[field.name] = _scalar(field, values[0], name)


def build_request(
    binding: Binding,
    path_values: dict[tuple[str, ...], str],
    query: list[tuple[str, str]],
    body: bytes,
    *,
    content_type: str = "",
) -> Message:
    descriptor: Descriptor = binding.rpc.request_class.DESCRIPTOR
    tree: dict[str, Any] = {}
    document: Any = None
    bound_top_level: set[str] = set()
    if binding.body:
        # A form: RFC 6749's token endpoint, for one.
        document = form_document(body, descriptor, binding.body) if is_form(content_type, body) else _parse_json(body)
        if binding.body == "*":
            if not isinstance(document, dict):
                raise bad_request("request body must be a JSON object")
            tree = document
            bound_top_level = {"*"}
        else:
            field = _resolve(descriptor, (binding.body,), "body field")[0]
            tree = {field.name: document}
            bound_top_level = {field.name, field.json_name}
    elif body.strip():
        raise bad_request("this method takes no request body")
    check_json_types(tree, descriptor)
    implied_mask = _implied_update_mask(binding, descriptor, document, path_values) if binding.body else []

    for dotted, value in path_values.items():
        if _CONTROL.search(value):
            raise bad_request(
                f"path variable '{'.'.join(dotted)}': must not contain control characters", field=".".join(dotted)
            )
        chain = _resolve(descriptor, dotted, "path variable")
        _assign(tree, chain, [value], ".".join(dotted), overwrite=True)

    grouped: dict[str, list[str]] = {}
    for name, value in query:
        grouped.setdefault(name, []).append(value)
    # FieldMasks from the query, set after parsing: their JSON form would refuse proto names.
    masks: dict[tuple[str, ...], list[str]] = {}
    for name, values in grouped.items():
        if "*" in bound_top_level:
            raise bad_request(f"query parameter '{name}': this method takes every field in the body", field=name)
        field_path, key = map_entry_name(name)
        dotted = tuple(field_path.split("."))
        if dotted[0] in bound_top_level:
            raise bad_request(f"query parameter '{name}': that field comes from the body", field=name)
        if tuple(dotted) in path_values:
            raise bad_request(f"query parameter '{name}': that field comes from the path", field=name)
        chain = _resolve(descriptor, dotted, "query parameter")
        if key is not None:
            _assign_map_entry(tree, chain, key, values, name)
        elif is_map(chain[-1]):
            raise bad_request(f"query parameter '{name}': a map entry is written {name}[key]=value", field=name)
        elif is_field_mask(chain[-1]):
            mask_of = update_target(descriptor, binding.body) if dotted == (UPDATE_MASK,) else None
            masks[tuple(field.name for field in chain)] = mask_paths(",".join(values), mask_of, name)
        else:
            _assign(tree, chain, values, name, overwrite=False)

    message = binding.rpc.request_class()
    try:
        if tree or binding.body:  # a read with no path or query values has nothing to parse
            json_format.ParseDict(tree, message)
    except json_format.ParseError as error:
        text = _first_line(str(error))
        raise bad_request(text, field=_parse_error_field(text)) from None
    for names, paths in masks.items():
        holder = message
        for name in names[:-1]:
            holder = getattr(holder, name)
        mask = getattr(holder, names[-1])
        mask.SetInParent()
        mask.paths.extend(paths)
    if implied_mask and not getattr(message, UPDATE_MASK).paths:
        getattr(message, UPDATE_MASK).paths.extend(implied_mask)
    return message


def _implied_update_mask(
    binding: Binding, descriptor: Descriptor, document: Any, path_values: dict[tuple[str, ...], str]
) -> list[str]:
    """The update_mask a PATCH or PUT body implies, used when none is given (grpc-gateway's rule);
    read before path variables are merged into the body, as grpc-gateway reads the body alone."""
    field = descriptor.fields_by_name.get(UPDATE_MASK)
    if binding.http_method not in ("PATCH", "PUT") or field is None or not is_field_mask(field):
        return []
    if not isinstance(document, dict):
        return []
    target = update_target(descriptor, binding.body)
    if binding.body == "*":
        skip = {UPDATE_MASK} | {dotted[0] for dotted in path_values}
    elif target is descriptor:
        return []  # the body is one scalar or repeated field: nothing to name inside it
    else:
        skip = set()
    return mask_from_body(document, target, skip)


def _assign_map_entry(
    tree: dict[str, Any], chain: list[FieldDescriptor], key: str, values: list[str], name: str
) -> None:
    entry = chain[-1].message_type
    if entry is None or not is_map(chain[-1]):
        raise bad_request(f"query parameter '{name}': '{chain[-1].name}' is not a map field", field=name)
    if len(values) > 1:
        raise bad_request(f"query parameter '{name}' is given more than once", field=name)
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    _check_unicode(key, f"query parameter '{name}' (its key)", name)
    _check_unicode(values[0], f"query parameter '{name}'", name)
    check_map_key(key_field, key, name)
    node = tree
    for field in chain[:-1]:
        node = node.setdefault(field.name, {})
        if not isinstance(node, dict):
            raise bad_request(f"query parameter '{name}': conflicts with a value given elsewhere", field=name)
    entries = node.setdefault(chain[-1].name, {})
    if not isinstance(entries, dict):
        raise bad_request(f"query parameter '{name}': conflicts with a value given elsewhere", field=name)
    if key in entries:
        raise bad_request(f"query parameter '{name}': the key is given more than once", field=name)
    entries[key] = _scalar(value_field, values[0], name)


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("request body is not valid UTF-8") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise bad_request(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError as error:
        raise bad_request(f"request body is not valid JSON: {error}") from None


def json_depth(text: str) -> int:
    """How deep arrays and objects nest, counted without parsing (brackets in strings aside)."""
    brackets = re.sub(r"[^\[\]{}]", "", _JSON_STRING.sub("", text))
    return max(accumulate(1 if bracket in "[{" else -1 for bracket in brackets), default=0)


def check_json_types(tree: dict[str, Any], descriptor: Descriptor, prefix: str = "") -> None:
    """What json_format lets through but the JSON mapping does not mean: a boolean
    for an enum (true would be value 1), string or number, and numbers that are not
    finite (json reads NaN, Infinity and 1e999). Unknown names are left to json_format."""
    for name, value in tree.items():
        field = find_field(descriptor, name) if isinstance(name, str) else None
        if field is None:
            continue
        path = f"{prefix}{field.name}"
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry and isinstance(value, dict):
            for key, item in value.items():
                _check_unicode(key, f"{path} (a key)", path)
                _check_json_value(entry.fields_by_name["value"], item, f"{path}.{key}")
        elif is_repeated(field) and isinstance(value, list):
            for index, item in enumerate(value):
                _check_json_value(field, item, f"{path}[{index}]")
        else:
            _check_json_value(field, value, path)


def _check_json_value(field: FieldDescriptor, value: Any, path: str) -> None:
    message_name = field.message_type.full_name if field.message_type is not None else ""
    if message_name in _JSON_VALUE_TYPES:
        _check_json_tree(value, path)
        return
    if isinstance(value, str):
        _check_unicode(value, path)
    elif isinstance(value, bool):
        if field.type != FieldDescriptor.TYPE_BOOL and message_name != "google.protobuf.BoolValue":
            raise bad_request(f"{path}: expected {_json_kind(field)}, got a boolean", field=path)
    elif isinstance(value, float) and not math.isfinite(value):
        raise bad_request(f"{path}: must be a finite number", field=path)
    elif isinstance(value, dict) and field.message_type is not None and message_name not in _STRING_FORM_TYPES:
        check_json_types(value, field.message_type, f"{path}.")


def _check_json_tree(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_request(f"{path}: must be a finite number (not NaN or Infinity)", field=path)
    if isinstance(value, str):
        _check_unicode(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key, f"{path} (a key)", path)
            _check_json_tree(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_tree(item, f"{path}[{index}]")


def _check_unicode(value: str, path: str, field: str | None = None) -> None:
    """JSON's \\u escapes can spell a lone surrogate, which no UTF-8 message can carry."""
    if _SURROGATE.search(value):
        raise bad_request(f"{path}: is not valid Unicode (a lone surrogate escape)", field=field or path)


def _json_kind(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return "an enum value name"
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return "a string"
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return "a string" if message_of(field).full_name in _STRING_FORM_TYPES else "an object"
    return "a number"


_PARSE_STEP = re.compile(r"Failed to parse (\w+) field: ")
_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]*)" at "([^"]*)"')


def _parse_error_field(text: str) -> str | None:
    """The field path a json_format error is about, read from its wording, or None."""
    names, rest = [], text
    while (step := _PARSE_STEP.match(rest)) is not None:
        names.append(step.group(1))
        rest = rest[step.end() :]
    unknown = _UNKNOWN_FIELD.search(rest)
    if unknown is not None:
        return ".".join([*unknown.group(2).split(".")[1:], unknown.group(1)])
    return ".".join(names) or None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "invalid request"


_MESSAGE_JSON = {False: MessageJson(json_names=False), True: MessageJson(json_names=True)}


def to_json(message: Message, response_body: str = "", *, json_names: bool = False) -> Any:
    """The message in protobuf JSON: fields by proto name (Tenantry's default) or by json_name."""
    document = _MESSAGE_JSON[json_names].document(message)
    if response_body:
        field = message.DESCRIPTOR.fields_by_name[response_body]
        return document.get(field.json_name if json_names else field.name)
    return document
