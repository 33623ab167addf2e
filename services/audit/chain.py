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
from datetime import UTC
from typing import Any

GENESIS = b""


@dataclass(frozen=True)
class ChainLink:
    """A position in a scope's chain: its sequence number and the hash there."""

    sequence: int
    chain_hash: bytes


START = ChainLink(0, GENESIS)


def canonical(event: dict[str, Any], sequence: int) -> bytes:
    """The event's content as hashed: stable across the database round trip."""
    ip = event["ip_address"]
    document = {
        "id": str(event["id"]),
        "tenant_id": str(event["tenant_id"]) if event["tenant_id"] else "",
        "user_id": str(event["user_id"]) if event["user_id"] else "",
        "action": event["action"],
        "resource_type": event["resource_type"],
        "resource_id": event["resource_id"],
        "details": _normalized(event["details"]),
        "ip_address": _normalized_ip(str(ip)) if ip else "",
        "user_agent": event["user_agent"] or "",
        "request_id": event["request_id"] or "",
        "created_at": event["created_at"].astimezone(UTC).isoformat(timespec="microseconds"),
        "sequence": sequence,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(key: bytes, previous: bytes, event: dict[str, Any], sequence: int) -> bytes:
    return hmac.new(key, previous + canonical(event, sequence), hashlib.sha256).digest()


@functools.lru_cache(maxsize=4096)
def _normalized_ip(ip: str) -> str:
    """The address as inet gives it back; a few client addresses recur in every batch."""
    return str(ipaddress.ip_address(ip.split("/")[0]))


def _normalized(value: Any) -> Any:
    """Integral floats as integers: jsonb keeps 1e20 as 100000000000000000000.

    Exact type tests: values come from JSON or a Struct, never subclasses,
    and this runs for every field of every event ingested."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is dict:
        return {key: _normalized(item) for key, item in value.items()}
    if kind is list:
        return [_normalized(item) for item in value]
    return value
