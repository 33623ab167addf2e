"""The rules for events a tenant's application appends (BatchCreateAuditEvents), beside those every ingest applies.

- The tenant is the credential's; the event has no tenant field to name another.
- The credential is recorded as recorded_by (type and id, from the verified
  token). The actor is the end user the event names (actor_id, type USER, or
  SYSTEM for the application's own jobs), else the credential itself: both are
  kept, so an application can say who acted without hiding who reported it.
  An event cannot name an API key or a service account as its actor, nor set
  user_id: those are Tenantry's identities, which only a credential proves.
- Tenantry's own namespaces are refused (RESERVED_NAMESPACES), so an
  application's event never reads as one of Tenantry's: actions are ASCII (no
  look-alike letters) and their first segment, in any case, is not reserved.
- Ids are UUIDs the application chooses, each at most once per batch; its
  replay of a stored event (same id, same content) stores nothing and gets the
  stored event's receipt; the same id with other content is ALREADY_EXISTS.
  Content means what the application sent: who resends it is not compared, so
  a retry after a key rotation is still a replay.
- created_at is required (a server default would make every retry a new
  event) and must lie within [now - MAX_AGE, now + MAX_AHEAD]: that bounds the
  window in which ids are looked up, and no application can make partitions
  for arbitrary months.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tenantry.audit.v1 import audit_service_pb2

from kit.context import Principal
from kit.errors import AlreadyExists, InvalidArgument
from services.audit import chain
from services.audit.event_model import (
    ACTOR_TYPES,
    API_KEY,
    SERVICE_ACCOUNT,
    SYSTEM,
    USER,
    enum_name,
    event_fields,
    validate_event,
)

MAX_BATCH = 1000
MAX_DETAILS_BYTES = 16 * 1024
MAX_AGE = timedelta(days=31)
MAX_AHEAD = timedelta(minutes=5)
# Ids are looked up this far back, a little past MAX_AGE, so a replay sent just
# within the window, compared with a clock that moved on, is still found.
LOOKUP_WINDOW = MAX_AGE + timedelta(days=1)

# The first segments of the actions Tenantry's services record, and those it keeps for itself.
RESERVED_NAMESPACES = frozenset(
    {
        "tenantry",
        "auth",
        "tenant",
        "tenants",
        "user",
        "users",
        "membership",
        "invitation",
        "role",
        "audit",
        "platform",
        "operator",
        "api_key",
        "service_account",
        "system_setting",
        "email",
    }
)
_ACTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]*")
_NAMEABLE_ACTORS = {USER, SYSTEM}


@dataclass(frozen=True)
class Caller:
    """The credential appending events: its type (USER, API_KEY, SERVICE_ACCOUNT) and id."""

    actor_type: str
    actor_id: str


def caller_of(principal: Principal) -> Caller:
    """Who the verified token says is calling: its actor type (a user, an API key, a service
    account; anything else counts as a user) and its subject (the user's or the key's id)."""
    kind = principal.actor_type if principal.actor_type in (USER, API_KEY, SERVICE_ACCOUNT) else USER
    return Caller(kind, str(principal.user_id))


def reserved_namespace(action: str) -> str | None:
    first = action.split(".", 1)[0].lower()
    return first if first in RESERVED_NAMESPACES else None


def application_event(
    index: int, message: audit_service_pb2.ApplicationAuditEvent, tenant_id: UUID, caller: Caller, now: datetime
) -> dict[str, Any]:
    """One event of the request, checked, as the trail stores it."""
    prefix = f"events[{index}]."

    def fail(field: str, problem: str) -> InvalidArgument:
        return InvalidArgument(prefix + field, problem)

    action = message.action
    if not _ACTION.fullmatch(action):
        raise fail("action", "must be ASCII letters, digits and . _ - : /, starting with a letter, digit or _")
    reserved = reserved_namespace(action)
    if reserved:
        raise fail("action", f"'{reserved}.' is Tenantry's own namespace; name the application's actions otherwise")
    if message.details.ByteSize() > MAX_DETAILS_BYTES:
        raise fail("details", f"must be at most {MAX_DETAILS_BYTES} bytes encoded")
    named_type = enum_name(ACTOR_TYPES, prefix + "actor_type", message.actor_type)
    if named_type is not None and named_type not in _NAMEABLE_ACTORS:
        raise fail("actor_type", "may be USER or SYSTEM; the calling credential is recorded as recorded_by")
    if message.actor_id and named_type is None:
        named_type = USER
    if named_type == USER and not message.actor_id:
        raise fail("actor_id", "is required for an actor of type USER")
    event = event_fields(prefix, message)
    event.update(
        tenant_id=str(tenant_id),
        user_id=None,
        actor_type=named_type or caller.actor_type,
        actor_id=(message.actor_id or None) if named_type else caller.actor_id,
        recorded_by_type=caller.actor_type,
        recorded_by_id=caller.actor_id,
    )
    created_at = event["created_at"]
    if created_at is not None and not now - MAX_AGE <= created_at <= now + MAX_AHEAD:
        raise fail("created_at", "must be at most 31 days old and at most 5 minutes ahead")
    return validate_event(index, event)


def application_events(
    request: audit_service_pb2.BatchCreateAuditEventsRequest, tenant_id: UUID, caller: Caller, now: datetime
) -> list[dict[str, Any]]:
    if len(request.events) > MAX_BATCH:
        raise InvalidArgument("events", f"at most {MAX_BATCH} per batch")
    events: list[dict[str, Any]] = []
    first_index: dict[str, int] = {}
    for index, message in enumerate(request.events):
        event = application_event(index, message, tenant_id, caller, now)
        earlier = first_index.setdefault(event["id"], index)
        if earlier != index:
            raise InvalidArgument(f"events[{index}].id", f"repeats the id of events[{earlier}]")
        events.append(event)
    return events


def _as_sent(event: Any, get: Any) -> dict[str, Any]:
    """What an application sent of an event: every field but the recorded credential
    and an actor that was the credential itself (no end user named)."""
    document = {field: get(event, field) for field in chain.EVENT_FIELDS if not field.startswith("recorded_by")}
    for field in ("id", "tenant_id"):
        document[field] = str(document[field])
    document["details"] = chain.normalized(document["details"])
    document["ip_address"] = chain.normalized_ip(str(document["ip_address"])) if document["ip_address"] else None
    if (document["actor_type"], document["actor_id"]) == (get(event, "recorded_by_type"), get(event, "recorded_by_id")):
        document["actor_type"] = document["actor_id"] = None
    del document["chain_format"]
    return document


def require_same_content(index: int, incoming: dict[str, Any], stored: Any) -> None:
    """A replay must be the event stored under its id; anything else is refused."""
    if _as_sent(incoming, dict.__getitem__) != _as_sent(stored, getattr):
        raise AlreadyExists(
            f"events[{index}].id: an event with this id is stored already with other content; "
            "an event's id must not be reused"
        )
