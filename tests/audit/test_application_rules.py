"""The rules of an application's events, as properties over many inputs (no server needed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from tenantry.audit.v1 import audit_service_pb2

from kit.errors import InvalidArgument
from services.audit.application_ingest import RESERVED_NAMESPACES, Caller, application_event

TENANT = uuid.uuid4()
CALLER = Caller("api_key", "key-1")
NOW = datetime.now(UTC)
SEGMENT = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_:/-]{0,15}", fullmatch=True)


def event_with(action: str) -> audit_service_pb2.ApplicationAuditEvent:
    message = audit_service_pb2.ApplicationAuditEvent(
        id=str(uuid.uuid4()), action=action, resource_type="document", resource_id="1"
    )
    message.created_at.FromDatetime(NOW)
    return message


def outcome(action: str) -> str:
    """ "stored", or the refused field's problem."""
    try:
        application_event(0, event_with(action), TENANT, CALLER, NOW)
    except InvalidArgument as error:
        return str(error)
    return "stored"


@given(
    namespace=st.sampled_from(sorted(RESERVED_NAMESPACES)),
    casing=st.lists(st.booleans(), min_size=20, max_size=20),
    rest=st.lists(SEGMENT, max_size=3),
)
def test_every_reserved_namespace_is_refused_in_any_case(namespace: str, casing: list[bool], rest: list[str]) -> None:
    cased = "".join(char.upper() if upper else char for char, upper in zip(namespace, casing, strict=False))
    action = ".".join([cased, *rest])
    assert outcome(action).startswith("events[0].action: "), action


@given(first=SEGMENT, rest=st.lists(SEGMENT, max_size=3))
def test_an_ascii_action_outside_the_reserved_namespaces_is_stored(first: str, rest: list[str]) -> None:
    action = ".".join([first, *rest])[:100]
    expected_refused = first.lower() in RESERVED_NAMESPACES
    assert (outcome(action) != "stored") == expected_refused, action


@given(action=st.text(min_size=1, max_size=40).filter(lambda text: not text.isascii()))
def test_an_action_with_any_non_ascii_character_is_refused(action: str) -> None:
    assert outcome(action).startswith("events[0].action: ")


@given(actor=st.text(max_size=30), recorded=st.sampled_from(["user", "api_key", "service_account"]))
def test_the_recorder_is_always_the_credential_whatever_the_event_names(actor: str, recorded: str) -> None:
    message = event_with("document.shared")
    message.actor_id = actor
    event = application_event(0, message, TENANT, Caller(recorded, "credential-1"), NOW)
    assert (event["recorded_by_type"], event["recorded_by_id"]) == (recorded, "credential-1")
    assert event["tenant_id"] == str(TENANT) and event["user_id"] is None
    if actor:
        assert (event["actor_type"], event["actor_id"]) == ("user", actor)
    else:
        assert (event["actor_type"], event["actor_id"]) == (recorded, "credential-1")
