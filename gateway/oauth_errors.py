"""OAuth 2 error answers (RFC 6749 §5.2) for RPCs that name an OAuth error code.

An upstream refusal whose google.rpc.ErrorInfo reason names an OAuth error
(OAUTH_INVALID_CLIENT and the like: the token endpoint sends them) is answered
with `{"error": code, "error_description": message}`
beside the usual error fields: 401 with a Basic challenge for
invalid_client (§5.2 requires it when the client tried the Authorization
header, and every 401 carries a challenge), 400 for every other code. Only
the codes RFC 6749 defines pass; anything else gets the usual body.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2

from gateway.status import GatewayError, error_body
from kit.error_details import DOMAIN, details_in

BASIC_CHALLENGE = 'Basic realm="tenantry"'
OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)


def oauth_error(error: grpc.aio.AioRpcError) -> GatewayError | None:
    code = next(
        (
            detail.reason.removeprefix("OAUTH_").lower()
            for detail in details_in(error.trailing_metadata())
            if isinstance(detail, error_details_pb2.ErrorInfo) and detail.domain == DOMAIN
        ),
        None,
    )
    if code not in OAUTH_ERRORS:
        return None
    description = error.details() or str(code)
    # The usual fields stay too (the OpenAPI error schema, generic clients): RFC 6749 clients ignore them.
    body = {"error": str(code), "error_description": description, **error_body(error.code(), description)}
    if code == "invalid_client":
        return GatewayError(
            error.code(), description, http_status=401, headers={"WWW-Authenticate": BASIC_CHALLENGE}, body=body
        )
    return GatewayError(error.code(), description, http_status=400, body=body)
