"""The OAuth 2 client-credentials grant (RFC 6749 §4.4) for service accounts.

Clients authenticate with a secret (HTTP Basic, RFC 6749 §2.3.1, or the body)
or with private_key_jwt (RFC 7523 §2.2), exactly one method per request. The
answer is an access token like any other, whose sid is the credential used:
revoking the credential or deleting the account revokes it through the
revocation feed. Refusals carry an RFC 6749 §5.2 error code, which the API
layer sends as an ErrorInfo reason (OAUTH_INVALID_CLIENT, ...) for the gateway.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus
from uuid import UUID

import grpc
import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from kit.db import PLATFORM_SCOPE, Database
from kit.error_details import Reason
from kit.errors import DomainError
from kit.outbox import Outbox
from kit.permissions import missing
from kit.service_identity import minted_session_id, platform_account_id
from services.auth.models import ServiceAccount, ServiceAccountCredential
from services.auth.repository import directory
from services.auth.repository import service_accounts as account_rows
from services.auth.service.access_tokens import SERVICE_ACCOUNT_ACTOR, sign_access_token
from services.auth.service.client_keys import RegisteredKey, assertion_header, check_assertion
from services.auth.service.service_accounts import PUBLIC_KEY, hash_client_secret, parse_client_id
from services.auth.service.signing_keys import SigningKeys

GRANT_TYPE = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AUTHENTICATION_FAILED = "client authentication failed"
MAX_FIELD_LENGTH = 8192


# RFC 6749 §5.2's error codes, sent as ErrorInfo reasons (the gateway turns them back into the OAuth body).
OAUTH_REASONS = {
    "invalid_request": Reason.OAUTH_INVALID_REQUEST,
    "invalid_client": Reason.OAUTH_INVALID_CLIENT,
    "invalid_grant": Reason.OAUTH_INVALID_GRANT,
    "unauthorized_client": Reason.OAUTH_UNAUTHORIZED_CLIENT,
    "unsupported_grant_type": Reason.OAUTH_UNSUPPORTED_GRANT_TYPE,
    "invalid_scope": Reason.OAUTH_INVALID_SCOPE,
}


class OAuthError(DomainError):
    """A refusal with its RFC 6749 §5.2 error code."""

    def __init__(self, error: str, description: str, *, code: grpc.StatusCode, keeps_changes: bool = False) -> None:
        super().__init__(description, keeps_changes=keeps_changes, reason=OAUTH_REASONS[error])
        self.code = code
        self.error = error


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description, code=grpc.StatusCode.INVALID_ARGUMENT)


def invalid_client(description: str = AUTHENTICATION_FAILED, *, keeps_changes: bool = False) -> OAuthError:
    return OAuthError("invalid_client", description, code=grpc.StatusCode.UNAUTHENTICATED, keeps_changes=keeps_changes)


@dataclass(frozen=True)
class TokenRequest:
    grant_type: str
    scope: str
    client_id: str
    client_secret: str
    client_assertion_type: str
    client_assertion: str
    # The Authorization header (metadata), for client_secret_basic.
    authorization: str


@dataclass(frozen=True)
class ClientAuthentication:
    client_id: str
    secret: str | None = None
    assertion: str | None = None


@dataclass(frozen=True)
class ServiceToken:
    access_token: str
    expires_in: int
    scope: str | None


@dataclass(frozen=True)
class GrantPolicy:
    issuer: str
    audience: str
    # The token endpoint's URL: what an assertion's aud must name.
    token_endpoint: str
    ttl: timedelta


def client_authentication(request: TokenRequest) -> ClientAuthentication:
    """The one client authentication method the request uses."""
    if any(len(value) > MAX_FIELD_LENGTH for value in vars(request).values()):
        raise invalid_request("a parameter is too long")
    scheme, _, credentials = request.authorization.partition(" ")
    basic = scheme.lower() == "basic"
    methods = [basic, bool(request.client_secret), bool(request.client_assertion or request.client_assertion_type)]
    if sum(methods) > 1:
        raise invalid_request("use exactly one client authentication method")
    if basic:
        client_id, secret = _basic_credentials(credentials)
        if request.client_id and request.client_id != client_id:
            raise invalid_request("client_id differs from the one authenticated")
        return ClientAuthentication(client_id, secret=secret)
    if request.client_secret:
        if not request.client_id:
            raise invalid_request("client_id is required with client_secret")
        return ClientAuthentication(request.client_id, secret=request.client_secret)
    if request.client_assertion or request.client_assertion_type:
        if request.client_assertion_type != JWT_BEARER:
            raise invalid_request(f"client_assertion_type must be {JWT_BEARER}")
        if not request.client_assertion:
            raise invalid_request("client_assertion is required")
        return ClientAuthentication(request.client_id, assertion=request.client_assertion)
    raise invalid_client("client authentication is required (HTTP Basic, client_secret or client_assertion)")


def _basic_credentials(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("the Basic credentials are malformed") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise invalid_client("the Basic credentials are malformed")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
    return unquote_plus(client_id), unquote_plus(secret)


class ClientCredentialsGrant:
    def __init__(self, database: Database, keys: SigningKeys, outbox: Outbox, policy: GrantPolicy) -> None:
        self._database = database
        self._keys = keys
        self._outbox = outbox
        self._policy = policy

    async def token(self, request: TokenRequest) -> ServiceToken:
        if not request.grant_type:
            raise invalid_request("grant_type is required")
        if request.grant_type != GRANT_TYPE:
            raise OAuthError(
                "unsupported_grant_type", f"only {GRANT_TYPE} is supported", code=grpc.StatusCode.INVALID_ARGUMENT
            )
        authentication = client_authentication(request)
        client_id = authentication.client_id or _assertion_subject(authentication.assertion)
        parsed = parse_client_id(client_id)
        if parsed is None:
            raise invalid_client()
        tenant_id, account_id = parsed
        now = datetime.now(UTC)
        async with self._database.unit_of_work(
            scope=PLATFORM_SCOPE if tenant_id is None else str(tenant_id)
        ) as session:
            account = await account_rows.find_account(session, tenant_id, account_id)
            if account is None:
                raise invalid_client()
            credential = await self._authenticate(session, account, client_id, authentication, now)
            if tenant_id is not None:
                entry = await directory.find_tenant(session, tenant_id)
                if entry is None or not entry.is_active:
                    raise OAuthError(
                        "unauthorized_client",
                        "the account's tenant is suspended",
                        code=grpc.StatusCode.PERMISSION_DENIED,
                    )
            permissions = _granted(account, request.scope)
            await account_rows.touch_credential(session, credential.id, now)
            await self._outbox.record(
                session,
                action="auth.service_account.token_issued",
                resource_type="service_account",
                resource_id=account.id,
                tenant_id=account.tenant_id,
                user_id=account.id,
                details={"credential_id": str(credential.id), "category": "auth", "outcome": "success"},
            )
        token = self._sign(account, credential.id, permissions, now)
        return ServiceToken(token, self._ttl, " ".join(permissions) if request.scope.strip() else None)

    async def mint_own(self, name: str, permissions: tuple[str, ...]) -> tuple[str, int]:
        """A token for auth's own calls (its outbox relay), signed here without a grant or a stored account."""
        account = ServiceAccount(id=platform_account_id(name), tenant_id=None, permissions=list(permissions))
        return self._sign(account, minted_session_id(name), list(permissions), datetime.now(UTC)), self._ttl

    @property
    def _ttl(self) -> int:
        return int(self._policy.ttl.total_seconds())

    def _sign(self, account: ServiceAccount, credential_id: UUID, permissions: list[str], now: datetime) -> str:
        return sign_access_token(
            self._keys,
            issuer=self._policy.issuer,
            audience=self._policy.audience,
            subject=account.id,
            session_id=credential_id,
            tenant_id=account.tenant_id,
            roles=[],
            permissions=permissions,
            now=now,
            ttl_seconds=self._ttl,
            actor_type=SERVICE_ACCOUNT_ACTOR,
        )

    async def _authenticate(
        self,
        session: AsyncSession,
        account: ServiceAccount,
        client_id: str,
        authentication: ClientAuthentication,
        now: datetime,
    ) -> ServiceAccountCredential:
        try:
            if authentication.secret is not None:
                found = await account_rows.find_secret(session, account.id, hash_client_secret(authentication.secret))
                if found is None:
                    raise ValueError(AUTHENTICATION_FAILED)
                return found
            assert authentication.assertion is not None
            return await self._check_assertion(session, account, client_id, authentication.assertion, now)
        except ValueError as refusal:
            await self._outbox.record(
                session,
                action="auth.service_account.authentication_failed",
                resource_type="service_account",
                resource_id=account.id,
                tenant_id=account.tenant_id,
                user_id=account.id,
                details={"category": "security", "outcome": "failure", "reason": str(refusal)},
            )
            raise invalid_client(str(refusal), keeps_changes=True) from None

    async def _check_assertion(
        self, session: AsyncSession, account: ServiceAccount, client_id: str, assertion: str, now: datetime
    ) -> ServiceAccountCredential:
        header = assertion_header(assertion)
        kid = header.get("kid")
        candidates = [
            key
            for key in await account_rows.public_keys(session, account.id)
            if key.algorithm == header["alg"] and (kid is None or key.kid == kid)
        ]
        if len(candidates) != 1:
            raise ValueError("client_assertion is signed with no registered key (name it by kid)")
        credential = candidates[0]
        assert credential.type == PUBLIC_KEY and credential.public_jwk is not None
        key = RegisteredKey(str(credential.kid), str(credential.algorithm), credential.public_jwk)
        checked = check_assertion(assertion, key, client_id=client_id, audience=self._policy.token_endpoint, now=now)
        if not await account_rows.use_assertion(
            session,
            client_id=client_id,
            jti=checked.jti,
            tenant_id=account.tenant_id,
            expires_at=checked.expires_at,
            now=now,
        ):
            raise ValueError("client_assertion was used already (jti)")
        return credential


def _assertion_subject(assertion: str | None) -> str:
    """Which client an assertion claims to be, before it is verified (RFC 7521 §4.2: client_id is optional)."""
    try:
        claims = jwt.decode(assertion or "", options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise invalid_client("client_assertion is not a JWT") from None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) else ""


def _granted(account: ServiceAccount, scope: str) -> list[str]:
    held = sorted(account.permissions)
    requested = scope.split()
    if not requested:
        return held
    lacking = missing(held, requested)
    if lacking:
        raise OAuthError(
            "invalid_scope",
            f"the account does not hold {', '.join(lacking[:5])}",
            code=grpc.StatusCode.INVALID_ARGUMENT,
        )
    return sorted(set(requested))
