"""Map fields in the query, as grpc-gateway writes them: `labels[key]=value`.

The key is everything between the first "[" and the final "]", so it may hold any character
(brackets included); it must be of the map's key type (an integer in range, true or false).
"""

from __future__ import annotations

import re

from google.protobuf.descriptor import FieldDescriptor

from gateway.status import bad_request

_INTEGER = re.compile(r"-?[0-9]{1,20}")


def is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def map_entry_name(name: str) -> tuple[str, str | None]:
    """`labels[key]` is the map field `labels` and its key (which may hold any character)."""
    bracket = name.find("[")
    if bracket < 0:
        return name, None
    if not name.endswith("]") or bracket == 0:
        raise bad_request(f"query parameter '{name}': a map entry is written field[key]=value", field=name)
    return name[:bracket], name[bracket + 1 : -1]


INTEGER_KEY_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def check_map_key(key_field: FieldDescriptor, key: str, name: str) -> None:
    """400 naming the parameter unless the key (always text in a URL, as in JSON) is of the key's type."""
    if key_field.type == FieldDescriptor.TYPE_BOOL and key not in ("true", "false"):
        raise bad_request(f"query parameter '{name}': the key must be true or false", field=name)
    bounds = INTEGER_KEY_RANGES.get(key_field.type)
    if bounds is not None and not (_INTEGER.fullmatch(key) and bounds[0] <= int(key) <= bounds[1]):
        raise bad_request(
            f"query parameter '{name}': the key must be an integer from {bounds[0]} to {bounds[1]}", field=name
        )
