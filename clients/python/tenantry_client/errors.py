"""What the library refuses, each with the gRPC status (and HTTP status) it stands for."""

from __future__ import annotations

import grpc


class TenantryClientError(Exception):
    grpc_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    http_status: int = 500
    # The stable google.rpc.ErrorInfo reason Tenantry's services send for the same refusal.
    default_reason = "UNKNOWN"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


class InvalidToken(TenantryClientError):
    """No credential, or one that failed a check: never retried as is."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401
    default_reason = "TOKEN_INVALID"


class PermissionMissing(TenantryClientError):
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403
    default_reason = "PERMISSION_MISSING"

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"requires the permission: {', '.join(missing)}")
        self.missing = missing


class VerificationUnavailable(TenantryClientError):
    """The token may be fine but cannot be checked now (no keys, revocations
    not current): the caller should retry, and nothing is let through."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    default_reason = "REVOCATIONS_NOT_CURRENT"
