"""Typed domain errors, each carrying the gRPC status it maps to and its google.rpc details.

Services raise these; the request interceptor turns them into statuses with
the details attached (see kit.error_details for the catalogue). Their
messages and details go to clients, so they must never hold secrets, SQL or
stack traces.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf.message import Message

from kit.error_details import Precondition, Reason, bad_request, error_info, precondition_failure, retry_info


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    # Seconds after which a retry may succeed, sent as `retry-after` trailing
    # metadata (the gateway's Retry-After header) and as RetryInfo.
    retry_after_seconds: int | None = None

    def __init__(
        self,
        message: str,
        *,
        keeps_changes: bool = False,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # A failure that is itself a fact to record (a failed login, a reused
        # refresh token) commits its unit of work instead of rolling it back.
        self.keeps_changes = keeps_changes
        # Sent as ErrorInfo, for clients to branch on.
        self.reason = reason
        self.metadata = dict(metadata or {})

    def details(self) -> list[Message]:
        """The google.rpc detail messages sent with the status."""
        details: list[Message] = []
        if self.reason is not None:
            details.append(error_info(self.reason, self.metadata))
        if self.retry_after_seconds is not None:
            details.append(retry_info(self.retry_after_seconds))
        return details


class InvalidArgument(DomainError):
    """A request field that cannot be taken; `field` is its path in the request (`owner.full_name`)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def details(self) -> list[Message]:
        return [bad_request(self.field, self.problem), *super().details()]


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The state forbids the request until `subject` changes (PreconditionFailure of type `violation`)."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, *, violation: Precondition, subject: str) -> None:
        super().__init__(message)
        self.violation = violation
        self.subject = subject

    def details(self) -> list[Message]:
        return [precondition_failure(self.violation, self.subject, self.message), *super().details()]


class _Refusal(DomainError):
    """A refusal of who the caller is or what they may do: always with its ErrorInfo reason."""

    def __init__(
        self, message: str, *, reason: Reason, metadata: Mapping[str, str] | None = None, keeps_changes: bool = False
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata, keeps_changes=keeps_changes)


class PermissionDenied(_Refusal):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(_Refusal):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, *, reason: Reason, retry_after_seconds: int | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_seconds = retry_after_seconds


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after_seconds: int, reason: Reason) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_seconds = max(1, retry_after_seconds)
