"""The machine-readable half of every refusal: google.rpc error details, and their catalogue.

Every error a Tenantry service answers carries, beside its status code and
message, a `google.rpc.Status` in the `grpc-status-details-bin` trailer (the
same code and message, plus details), as Google's APIs do (AIP-193):

- `google.rpc.BadRequest` on every INVALID_ARGUMENT: one field violation, its
  `field` the path in the request (`owner.full_name`, `events[3].action`) and
  its `description` the problem;
- `google.rpc.ErrorInfo` on refusals of who the caller is or what they may do
  (UNAUTHENTICATED, PERMISSION_DENIED) and on throttling and outages: a stable
  `reason` from `Reason` below, `domain` "tenantry.dev", and `metadata` such as
  the missing `permission`;
- `google.rpc.RetryInfo` on RESOURCE_EXHAUSTED and UNAVAILABLE: when a retry
  may succeed (the `retry-after` trailer says the same in whole seconds);
- `google.rpc.PreconditionFailure` on FAILED_PRECONDITION: a `type` from
  `Precondition` below, its `subject` (`roles/auditor`, `users/<id>`) and a
  description.

Clients branch on `reason` and `type`, never on the message, which may change.
Reasons and types are only ever added, never renamed. Details say no more than
the message does: no secrets, no stack traces, nothing about other tenants.
The request interceptor attaches them, once, for every typed DomainError.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

# ErrorInfo.domain of every reason below: the product, whichever service answers.
DOMAIN = "tenantry.dev"
DETAILS_TRAILER = "grpc-status-details-bin"


class Reason(StrEnum):
    """ErrorInfo reasons, with the status each comes with."""

    # UNAUTHENTICATED: the bearer access token.
    TOKEN_MISSING = "TOKEN_MISSING"  # none sent where one is needed
    TOKEN_INVALID = "TOKEN_INVALID"  # malformed, forged, wrong algorithm, type, issuer or audience, unknown key
    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # past its `exp`: refresh, then retry
    TOKEN_NOT_YET_VALID = "TOKEN_NOT_YET_VALID"  # before its `nbf` (clocks apart)
    TOKEN_REVOKED = "TOKEN_REVOKED"  # its session ended: logout, suspension, removal, a reused refresh token
    API_KEY_INVALID = "API_KEY_INVALID"  # malformed, unknown, or not accepted by this server
    API_KEY_REVOKED = "API_KEY_REVOKED"
    API_KEY_EXPIRED = "API_KEY_EXPIRED"
    API_KEY_NOT_ALLOWED = "API_KEY_NOT_ALLOWED"  # an API key may not do this (create keys): a person must
    # UNAUTHENTICATED: what a person presents instead of an access token.
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"  # an email and password that do not match (or a wrong password)
    REFRESH_TOKEN_INVALID = "REFRESH_TOKEN_INVALID"  # unknown, used, expired, or its session ended
    INVITATION_TOKEN_INVALID = "INVITATION_TOKEN_INVALID"  # unknown, used, revoked or expired
    VERIFICATION_TOKEN_INVALID = "VERIFICATION_TOKEN_INVALID"  # email verification: unknown, used or expired
    RESET_TOKEN_INVALID = "RESET_TOKEN_INVALID"  # password reset: unknown, used or expired
    USER_NOT_FOUND = "USER_NOT_FOUND"  # the token's user no longer exists
    # PERMISSION_DENIED.
    PERMISSION_MISSING = "PERMISSION_MISSING"  # metadata `permission`: what the RPC needs and the token lacks
    PERMISSIONS_NOT_HELD = "PERMISSIONS_NOT_HELD"  # granting or managing more than the caller holds
    OWNER_REQUIRED = "OWNER_REQUIRED"  # only owners grant or manage the owner role
    BUILT_IN_ROLE = "BUILT_IN_ROLE"  # owner, admin and viewer cannot change
    TENANT_REQUIRED = "TENANT_REQUIRED"  # the token names no tenant (an operator's, on a tenant's RPC)
    PLATFORM_OPERATOR_REQUIRED = "PLATFORM_OPERATOR_REQUIRED"
    PLATFORM_SERVICE_REQUIRED = "PLATFORM_SERVICE_REQUIRED"  # an internal method: only Tenantry's own service accounts
    TENANT_SUSPENDED = "TENANT_SUSPENDED"
    NOT_A_MEMBER = "NOT_A_MEMBER"  # of the tenant named, or of any usable tenant
    MEMBERSHIP_SUSPENDED = "MEMBERSHIP_SUSPENDED"
    MEMBERSHIP_REMOVED = "MEMBERSHIP_REMOVED"
    INVITATION_EMAIL_MISMATCH = "INVITATION_EMAIL_MISMATCH"  # the invitation is for another email
    REGISTRATION_CLOSED = "REGISTRATION_CLOSED"  # the tenant takes no self-registration
    # The token endpoint's refusals, each an RFC 6749 §5.2 error code (the gateway writes the OAuth body from it).
    OAUTH_INVALID_REQUEST = "OAUTH_INVALID_REQUEST"
    OAUTH_INVALID_CLIENT = "OAUTH_INVALID_CLIENT"
    OAUTH_INVALID_GRANT = "OAUTH_INVALID_GRANT"
    OAUTH_UNAUTHORIZED_CLIENT = "OAUTH_UNAUTHORIZED_CLIENT"
    OAUTH_UNSUPPORTED_GRANT_TYPE = "OAUTH_UNSUPPORTED_GRANT_TYPE"
    OAUTH_INVALID_SCOPE = "OAUTH_INVALID_SCOPE"
    NO_ACCESS_RULE = "NO_ACCESS_RULE"  # the method declares no access rule: nobody may call it
    # RESOURCE_EXHAUSTED (with RetryInfo).
    # Failed logins, account emails or refused API keys for this address or client.
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    PASSWORD_CHECKS_BUSY = "PASSWORD_CHECKS_BUSY"  # the password-check queue is full
    # UNAVAILABLE (with RetryInfo).
    REVOCATIONS_NOT_CURRENT = "REVOCATIONS_NOT_CURRENT"  # the list of ended sessions cannot be trusted yet
    KEYS_UNREACHABLE = "KEYS_UNREACHABLE"  # the auth service's verification keys cannot be fetched
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    AUTH_SERVICE_UNAVAILABLE = "AUTH_SERVICE_UNAVAILABLE"  # a call to the auth service failed


class Precondition(StrEnum):
    """PreconditionFailure violation types (FAILED_PRECONDITION): the state that must change first."""

    ROLE_IN_USE = "ROLE_IN_USE"  # members hold the role or open invitations offer it
    LAST_OWNER = "LAST_OWNER"  # the tenant would keep no active owner
    LAST_OWNER_INVITATION = "LAST_OWNER_INVITATION"  # an ownerless tenant's last owner invitation
    INVITATION_NOT_OPEN = "INVITATION_NOT_OPEN"  # already accepted or revoked
    MEMBER_REMOVED = "MEMBER_REMOVED"  # invite them again instead
    EMAIL_ALREADY_VERIFIED = "EMAIL_ALREADY_VERIFIED"
    ACCOUNT_CHANGED = "ACCOUNT_CHANGED"  # registered or verified meanwhile: retry the request
    FEATURE_DISABLED = "FEATURE_DISABLED"  # the server is not configured for it (API_KEY_HASH_KEY unset)
    CREDENTIALS_LIMIT = "CREDENTIALS_LIMIT"  # a service account has as many credentials as allowed: revoke one
    SETTINGS_LIMIT = "SETTINGS_LIMIT"  # as many system settings as allowed exist: delete one first
    PREFIX_EXHAUSTED = "PREFIX_EXHAUSTED"  # no unused API key prefix could be drawn: retry


def bad_request(field: str, description: str) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description=description)]
    )


def error_info(reason: Reason, metadata: Mapping[str, str] | None = None) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason.value, domain=DOMAIN, metadata=dict(metadata or {}))


def retry_info(seconds: int) -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))


def precondition_failure(kind: Precondition, subject: str, description: str) -> error_details_pb2.PreconditionFailure:
    violation = error_details_pb2.PreconditionFailure.Violation
    return error_details_pb2.PreconditionFailure(
        violations=[violation(type=kind.value, subject=subject, description=description)]
    )


def rich_status(code: int, message: str, details: Iterable[Message]) -> status_pb2.Status:
    """A google.rpc.Status: `code` is the gRPC status number (StatusCode.X.value[0])."""
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=code, message=message, details=packed)


def details_in(trailing_metadata: Sequence[tuple[str, Any]] | None) -> list[Message]:
    """The detail messages in a call's trailers (unpacked; kinds this module does not know are left out)."""
    for key, value in trailing_metadata or ():
        if key != DETAILS_TRAILER or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return []
        return [detail for holder in status.details if (detail := _unpacked(holder)) is not None]
    return []


_KNOWN = (
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.PreconditionFailure,
)


def _unpacked(holder: any_pb2.Any) -> Message | None:
    for kind in _KNOWN:
        if holder.Is(kind.DESCRIPTOR):
            detail = kind()
            holder.Unpack(detail)
            return detail
    return None
