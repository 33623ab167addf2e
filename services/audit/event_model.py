"""The audit event's fields: the contract's enums as stored, their limits, and the checks every ingest applies.

Enums are stored as their value's name in lowercase without the enum's prefix
(AUDIT_CATEGORY_AUTH is "auth"), which is also what Tenantry's services write
in their events' details and what the List filter has always taken.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor
from tenantry.audit.v1 import audit_pb2

from kit.audit_events import to_audit_event
from kit.errors import InvalidArgument
from services.audit import chain


def _names(enum: EnumDescriptor, prefix: str) -> dict[int, str]:
    return {value.number: value.name.removeprefix(prefix).lower() for value in enum.values if value.number}


CATEGORIES = _names(audit_pb2.AuditCategory.DESCRIPTOR, "AUDIT_CATEGORY_")
OUTCOMES = _names(audit_pb2.AuditOutcome.DESCRIPTOR, "AUDIT_OUTCOME_")
ACTOR_TYPES = _names(audit_pb2.AuditActorType.DESCRIPTOR, "AUDIT_ACTOR_TYPE_")
CATEGORY_NUMBERS = {name: number for number, name in CATEGORIES.items()}
OUTCOME_NUMBERS = {name: number for number, name in OUTCOMES.items()}
ACTOR_TYPE_NUMBERS = {name: number for number, name in ACTOR_TYPES.items()}
USER, API_KEY, SERVICE_ACCOUNT, SYSTEM = "user", "api_key", "service_account", "system"
SUCCESS, FAILURE = "success", "failure"

# Text fields and their longest value, as the table declares them.
LIMITS = {
    "action": 100,
    "resource_type": 100,
    "resource_id": 200,
    "request_id": 128,
    "error_message": 1000,
    "session_id": 128,
    "actor_id": 200,
    "target_type": 100,
    "target_id": 200,
    "target_name": 200,
}
REQUIRED = ("action", "resource_type", "resource_id")
OPTIONAL_LIMITED = ("request_id", "error_message", "session_id", "actor_id", "target_type", "target_id", "target_name")
USER_AGENT_LIMIT = 512


def enum_name(names: dict[int, str], field: str, number: int) -> str | None:
    """The stored name of an enum value; None for UNSPECIFIED; an unknown number is refused."""
    if not number:
        return None
    name = names.get(number)
    if name is None:
        raise InvalidArgument(field, f"{number} is not a known value")
    return name


def category_filter(value: str) -> str | None:
    """The List filter's category: the short lowercase name ("auth") or the enum's full name."""
    if not value:
        return None
    short = value.removeprefix("AUDIT_CATEGORY_").lower()
    if short not in CATEGORY_NUMBERS:
        raise InvalidArgument("category", f"must be one of {', '.join(sorted(CATEGORY_NUMBERS))}")
    return short


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def uuid_text(field: str, value: str, *, required: bool = True) -> str | None:
    """A UUID in its canonical text (lowercase, hyphenated), as the chain hashes it; ingest
    keeps ids as text, and the canonical form, which producers send, is checked without parsing."""
    if not value:
        if required:
            raise InvalidArgument(field, "is required")
        return None
    if _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(UUID(value))
    except ValueError:
        raise InvalidArgument(field, "must be a UUID") from None


def time_of(message: timestamp_pb2.Timestamp) -> datetime:
    """A Timestamp in UTC to the microsecond, as PostgreSQL keeps it."""
    # Positional (days, seconds, microseconds): keywords cost more, and this runs for every event.
    return _EPOCH + timedelta(0, message.seconds, message.nanos // 1000)


def details_of(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as the chain hashes it and jsonb gives it back: integral numbers as integers."""
    fields = message.fields
    details = {}
    for key in fields:
        value = fields[key]
        # A text, the most common value, is taken without asking which kind the value is; an empty
        # text is not told apart from other kinds that way, so _plain asks.
        details[key] = value.string_value or _plain(value)
    return details


def _plain(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise ValueError("a Struct number must be finite")
        return int(number) if number.is_integer() else number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return details_of(value.struct_value)
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    return None


def event_fields(prefix: str, message: Any) -> dict[str, Any]:
    """The fields an AuditEvent and an ApplicationAuditEvent share, as stored: an event
    of the current chain format, the rest (tenant, user, actor, recorder) for the caller to add."""
    return {
        "id": uuid_text(prefix + "id", message.id),
        "action": message.action,
        "resource_type": message.resource_type,
        "resource_id": message.resource_id,
        "details": details_of(message.details),
        "ip_address": message.ip_address or None,
        "user_agent": message.user_agent or None,
        "request_id": message.request_id or None,
        "created_at": time_of(message.created_at) if message.HasField("created_at") else None,
        "category": enum_name(CATEGORIES, prefix + "category", message.category),
        "outcome": enum_name(OUTCOMES, prefix + "outcome", message.outcome),
        "error_message": message.error_message or None,
        "session_id": message.session_id or None,
        "target_type": message.target_type or None,
        "target_id": message.target_id or None,
        "target_name": message.target_name or None,
        "chain_format": chain.CURRENT_FORMAT,
    }


def validate_event(index: int, event: dict[str, Any]) -> dict[str, Any]:
    """Checks one incoming event, whichever ingest it came through; errors name the event's index and field."""

    def fail(field: str, problem: str) -> InvalidArgument:
        return InvalidArgument(f"events[{index}].{field}", problem)

    for field in REQUIRED:
        value = event[field]
        if not value:
            raise fail(field, "is required")
        if len(value) > LIMITS[field]:
            raise fail(field, f"must be at most {LIMITS[field]} characters")
    for field in OPTIONAL_LIMITED:
        value = event[field]
        if value and len(value) > LIMITS[field]:
            raise fail(field, f"must be at most {LIMITS[field]} characters")
    if event["created_at"] is None:
        raise fail("created_at", "is required")
    if event["error_message"] and event["outcome"] != FAILURE:
        raise fail("error_message", "is only for an outcome of FAILURE")
    if event["ip_address"]:
        try:
            chain.normalized_ip(event["ip_address"])
        except ValueError:
            raise fail("ip_address", "is not an IP address") from None
    if event["user_agent"] and len(event["user_agent"]) > USER_AGENT_LIMIT:
        event["user_agent"] = event["user_agent"][:USER_AGENT_LIMIT]
    return event


def lift_from_details(event: dict[str, Any]) -> None:
    """Tenantry's services write an event's category, outcome and reason in its details
    (auth's account events: {"category": "auth", "outcome": "failure", "reason": "bad_password"});
    where the event does not say them itself, they become its fields, a failure's reason its
    error_message, and its user its actor. Details stay as sent. Values outside the
    enums are left in details only."""
    details = event["details"]
    if event["category"] is None:
        category = details.get("category")
        if type(category) is str and category in CATEGORY_NUMBERS:
            event["category"] = category
    if event["outcome"] is None:
        outcome = details.get("outcome")
        if type(outcome) is str and outcome in OUTCOME_NUMBERS:
            event["outcome"] = outcome
    if event["outcome"] == FAILURE and not event["error_message"]:
        reason = details.get("reason")
        if type(reason) is str and reason:
            event["error_message"] = reason[: LIMITS["error_message"]]
    if event["actor_type"] is None and event["actor_id"] is None and event["user_id"] is not None:
        event["actor_type"], event["actor_id"] = USER, event["user_id"]


# The stored fields that are enums in the contract, with their stored names by number.
_ENUM_FIELDS = {
    "category": CATEGORIES,
    "outcome": OUTCOMES,
    "actor_type": ACTOR_TYPES,
    "recorded_by_type": ACTOR_TYPES,
}
_ENUM_NUMBERS = {
    "category": CATEGORY_NUMBERS,
    "outcome": OUTCOME_NUMBERS,
    "actor_type": ACTOR_TYPE_NUMBERS,
    "recorded_by_type": ACTOR_TYPE_NUMBERS,
}


def stored_event(row: Any) -> audit_pb2.AuditEvent:
    """A stored event as the contract carries it, the grown model's fields included."""
    message = to_audit_event(row)
    for field in chain.FORMAT_2_TEXT_FIELDS:
        value = getattr(row, field)
        if value:
            numbers = _ENUM_NUMBERS.get(field)
            setattr(message, field, numbers[value] if numbers else value)
    return message


def chain_values(message: audit_pb2.AuditEvent, chain_format: int) -> dict[str, Any]:
    """A stored event as stored_event carries it, back as chain.link hashes it in chain_format:
    the stored values as they are (unlike ingest, nothing is lifted from details, nothing
    checked: a value that was not stored so fails the hash), so an exported event verifies offline."""
    values: dict[str, Any] = {
        field: getattr(message, field) or None
        for field in ("tenant_id", "user_id", "ip_address", "user_agent", "request_id")
    }
    for field in chain.FORMAT_2_TEXT_FIELDS:
        value = getattr(message, field)
        names = _ENUM_FIELDS.get(field)
        values[field] = (names.get(value) if names else value) or None
    values.update(
        id=message.id,
        action=message.action,
        resource_type=message.resource_type,
        resource_id=message.resource_id,
        details=details_of(message.details),
        created_at=time_of(message.created_at),
        chain_format=chain_format,
    )
    return values
