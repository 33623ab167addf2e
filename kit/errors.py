"""Typed domain errors, each carrying the gRPC status it maps to.

Services raise these; the request interceptor turns them into statuses. Their
messages go to clients, so they must never hold secrets, SQL or stack traces.
"""

from __future__ import annotations

import grpc


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    # Seconds after which a retry may succeed, sent as `retry-after` trailing
    # metadata (the gateway's Retry-After header).
    retry_after_seconds: int | None = None

    def __init__(self, message: str, *, keeps_changes: bool = False) -> None:
        super().__init__(message)
        self.message = message
        # A failure that is itself a fact to record (a failed login, a reused
        # refresh token) commits its unit of work instead of rolling it back.
        self.keeps_changes = keeps_changes


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, retry_after_seconds)
