"""The catalogue of error reasons and precondition types: stable, all in use, and what each error type sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from kit.error_details import DETAILS_TRAILER, DOMAIN, Precondition, Reason, details_in, rich_status
from kit.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)

ROOT = Path(__file__).resolve().parent.parent
SOURCES = "\n".join(
    path.read_text() for folder in ("kit", "services", "clients/python") for path in (ROOT / folder).rglob("*.py")
)


@pytest.mark.parametrize("entry", [*Reason, *Precondition], ids=str)
def test_every_reason_and_type_is_its_own_name_and_is_sent_somewhere(entry: Reason | Precondition) -> None:
    assert entry.value == entry.name and re.fullmatch(r"[A-Z][A-Z0-9_]*", entry.value)
    # The client library, which kit's token checks live in, names reasons as plain strings.
    assert f"{type(entry).__name__}.{entry.name}" in SOURCES or f'reason="{entry.value}"' in SOURCES


def round_trip(error: DomainError) -> list[Message]:
    """What a client reads back from the trailer the request interceptor sends."""
    status = rich_status(error.code.value[0], error.message, error.details())
    (key, value), *_ = rpc_status.to_status(status).trailing_metadata
    assert key == DETAILS_TRAILER
    return details_in([(key, value)])


def test_an_invalid_argument_sends_its_field_and_problem() -> None:
    (bad_request,) = round_trip(InvalidArgument("owner.email", "is not a valid email address"))
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    (violation,) = bad_request.field_violations
    assert (violation.field, violation.description) == ("owner.email", "is not a valid email address")


def test_a_refusal_sends_its_reason_and_metadata() -> None:
    denied = PermissionDenied(
        "requires the permission: a.b", reason=Reason.PERMISSION_MISSING, metadata={"permission": "a.b"}
    )
    (info,) = round_trip(denied)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, dict(info.metadata)) == ("PERMISSION_MISSING", DOMAIN, {"permission": "a.b"})


def test_throttling_and_outages_say_when_to_retry() -> None:
    throttled = round_trip(ResourceExhausted("slow down", retry_after_seconds=0, reason=Reason.TOO_MANY_ATTEMPTS))
    retry = next(d for d in throttled if isinstance(d, error_details_pb2.RetryInfo))
    assert retry.retry_delay.seconds == 1  # never "retry at once"
    outage = round_trip(Unavailable("down", reason=Reason.DATABASE_UNAVAILABLE, retry_after_seconds=1))
    assert [type(d).__name__ for d in outage] == ["ErrorInfo", "RetryInfo"]
    unknown = round_trip(Unavailable("down", reason=Reason.AUTH_SERVICE_UNAVAILABLE))
    assert [type(d).__name__ for d in unknown] == ["ErrorInfo"]  # no delay is promised when none is known


def test_a_failed_precondition_names_its_type_and_subject() -> None:
    refused = FailedPrecondition("name: role in use", violation=Precondition.ROLE_IN_USE, subject="roles/auditor")
    (failure,) = round_trip(refused)
    assert isinstance(failure, error_details_pb2.PreconditionFailure)
    (violation,) = failure.violations
    assert (violation.type, violation.subject, violation.description) == (
        "ROLE_IN_USE",
        "roles/auditor",
        refused.message,
    )


def test_garbage_in_the_trailer_is_no_details() -> None:
    assert details_in([(DETAILS_TRAILER, b"\xff\xff\xff")]) == []
    assert details_in(None) == []
