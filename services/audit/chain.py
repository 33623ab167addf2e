"""The audit hash chain: each event's HMAC covers its content and the hash before it.

A change, a removal or an insertion made outside the ingest path (a superuser
with the triggers disabled, say) breaks the chain from that event on, and
whoever lacks the key cannot forge a replacement chain.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = b""
# Format 1's canonical JSON: json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False),
# its encoder made once (dumps makes one per call, and this runs for every event verified).
_FORMAT_1_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# Format 2's is orjson's, keys sorted (several times faster: every event is encoded at ingest and again
# by each verification), or, for a document orjson cannot write (an integer past 64 bits in details),
# format 1's encoder. Which applies depends on the values alone, so ingest and verification agree.
_FORMAT_2_OPTIONS = orjson.OPT_SORT_KEYS


@dataclass(frozen=True)
class ChainLink:
    """A position in a scope's chain: its sequence number and the hash there."""

    sequence: int
    chain_hash: bytes


START = ChainLink(0, GENESIS)


# The chain formats: which of an event's fields its hash covers. An event
# keeps the format it was appended in (its chain_format column), so events
# hashed before the model grew still verify; the format is itself hashed in
# format 2 (a "format" key), so rewriting an event's format breaks its link.
FORMAT_1 = 1
FORMAT_2 = 2
CURRENT_FORMAT = FORMAT_2

# Format 1's fields: the first event model.
FORMAT_1_FIELDS = (
    "id",
    "tenant_id",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "details",
    "ip_address",
    "user_agent",
    "request_id",
    "created_at",
)
# Format 2 adds these, each "" when empty.
FORMAT_2_TEXT_FIELDS = (
    "category",
    "outcome",
    "error_message",
    "session_id",
    "actor_type",
    "actor_id",
    "target_type",
    "target_id",
    "target_name",
    "recorded_by_type",
    "recorded_by_id",
)
# What an event (a dict, or a row's attributes) must hold to be hashed: every
# stored column the chain covers, and the format it was hashed in.
EVENT_FIELDS = (*FORMAT_1_FIELDS, *FORMAT_2_TEXT_FIELDS, "chain_format")


def event_fields(row: Any) -> dict[str, Any]:
    """A stored event (an ORM row, or any object with the columns as attributes) as link() takes it."""
    return {field: getattr(row, field) for field in EVENT_FIELDS}


def canonical(event: dict[str, Any], sequence: int) -> bytes:
    """The event's content as hashed, in its chain_format, as UTF-8 JSON: stable across the
    database round trip. Format 1 writes every field of the first model, "" when empty.
    Format 2 writes the required fields, details, the sequence and the format, and of the
    other fields those that are not empty; it is also exactly the document ingest stores
    the event from (a field it leaves out is stored as NULL)."""
    created_at = event["created_at"]
    if created_at.tzinfo is not UTC:
        created_at = created_at.astimezone(UTC)
    document = {
        "id": str(event["id"]),
        "action": event["action"],
        "resource_type": event["resource_type"],
        "resource_id": event["resource_id"],
        "details": normalized(event["details"]),
        # orjson writes a time in UTC exactly as isoformat(timespec="microseconds") does, several times
        # faster, unless it falls on a whole second (it then leaves the fraction out): given as text then.
        "created_at": created_at if created_at.microsecond else _iso(created_at),
        "sequence": sequence,
    }
    chain_format = event["chain_format"]
    if chain_format == FORMAT_2:
        # _optional_value inlined: this runs for every event ingested and again for every one verified.
        for field in _FORMAT_2_TEXTS:
            value = event[field]
            if value:
                document[field] = value if type(value) is str else str(value)
        ip_address = event["ip_address"]
        if ip_address:
            document["ip_address"] = normalized_ip(str(ip_address))
        document["format"] = FORMAT_2
        try:
            return orjson.dumps(document, option=_FORMAT_2_OPTIONS)
        except orjson.JSONEncodeError:
            document["created_at"] = _iso(created_at)
            return _FORMAT_1_JSON.encode(document).encode()
    if chain_format != FORMAT_1:
        raise ValueError(f"unknown audit chain format {chain_format!r}")
    document["created_at"] = _iso(created_at)
    for field in _FORMAT_1_OPTIONAL:
        value = event[field]
        document[field] = _optional_value(field, value) if value else ""
    return _FORMAT_1_JSON.encode(document).encode()


def _iso(created_at: datetime) -> str:
    return created_at.isoformat(timespec="microseconds")


_FORMAT_1_OPTIONAL = ("tenant_id", "user_id", "ip_address", "user_agent", "request_id")
# Format 2's optional fields but the address, which is normalized.
_FORMAT_2_TEXTS = tuple(field for field in (*_FORMAT_1_OPTIONAL, *FORMAT_2_TEXT_FIELDS) if field != "ip_address")


def _optional_value(field: str, value: Any) -> str:
    if field == "ip_address":
        return normalized_ip(str(value))
    return value if type(value) is str else str(value)


def link(key: bytes, previous: bytes, event: dict[str, Any], sequence: int) -> bytes:
    """The chain hash of an event at sequence after the hash previous (GENESIS for the first):
    HMAC-SHA-256 under the chain key of previous followed by the event's canonical form.

    This is the one definition of the chain: ingest, verification and any
    offline check (an export's) compute it here. event holds EVENT_FIELDS
    (see event_fields for a stored row)."""
    return _hmac(key, previous, canonical(event, sequence))


def link_document(key: bytes, previous: bytes, event: dict[str, Any], sequence: int) -> tuple[bytes, bytes]:
    """link(), and the event's canonical document with its chain hash (hex) added: what ingest stores."""
    document = canonical(event, sequence)
    chain_hash = _hmac(key, previous, document)
    return chain_hash, _stored(document, event["chain_format"], chain_hash)


def _hmac(key: bytes, previous: bytes, document: bytes) -> bytes:
    # HMAC-SHA-256 of previous + document: a copy of the keyed state costs half of keying anew.
    keyed = _keyed_hmac(key).copy()
    keyed.update(previous)
    keyed.update(document)
    return keyed.digest()


@functools.lru_cache(maxsize=8)
def _keyed_hmac(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def stored_document(event: dict[str, Any], sequence: int, chain_hash: bytes) -> bytes:
    """The document an event already linked is stored from, with the chain hash it has
    (a restored archive's events go back in with the sequence and hash they had)."""
    return _stored(canonical(event, sequence), event["chain_format"], chain_hash)


def _stored(document: bytes, chain_format: int, chain_hash: bytes) -> bytes:
    # Format 1's canonical form does not name its format, which the insert stores: said beside the hash.
    named = b',"format":1' if chain_format == FORMAT_1 else b""
    return b'%s%s,"chain_hash":"%s"}' % (document[:-1], named, chain_hash.hex().encode())


_KEPT_AS_THEY_ARE = frozenset({str, int, bool, type(None)})


@functools.lru_cache(maxsize=4096)
def normalized_ip(ip: str) -> str:
    """The address as inet gives it back; a few client addresses recur in every batch."""
    return str(ipaddress.ip_address(ip.split("/")[0]))


def normalized(value: Any) -> Any:
    """Integral floats as integers: jsonb keeps 1e20 as 100000000000000000000.

    Exact type tests: values come from JSON or a Struct, never subclasses,
    and this runs for every field of every event ingested."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is dict:
        # Most details hold texts, integers and booleans only: kept as they are, not copied.
        for item in value.values():
            if type(item) not in _KEPT_AS_THEY_ARE:
                return {key: normalized(item) for key, item in value.items()}
        return value
    if kind is list:
        return [normalized(item) for item in value]
    return value
