"""gRPC status to HTTP status, as Envoy and grpc-gateway map them, and the error body."""

from __future__ import annotations

from typing import Any

import grpc

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def error_body(code: grpc.StatusCode, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # `details`: the upstream's google.rpc.Status details, as grpc-gateway writes them (gateway/error_details.py).
    return {"code": code.value[0], "message": message, "details": details or []}


class GatewayError(Exception):
    """A failure the gateway answers itself, with a gRPC code for the body."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        http_status: int | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status or HTTP_STATUS[code]
        self.headers = headers or {}
        self.details = details or []
        # The request field (or parameter) a 400 of the gateway's own is about: its BadRequest detail.
        self.field = field

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


def bad_request(message: str, *, field: str | None = None) -> GatewayError:
    """INVALID_ARGUMENT; with `field`, the answer carries a google.rpc.BadRequest naming it too."""
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, message, field=field)
