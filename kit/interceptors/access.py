"""Authentication and per-RPC authorization, from the rules in the contracts."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from tenantry.common.v1 import access_pb2

from kit.access import AccessRule
from kit.api_keys import API_KEY_HEADER, ApiKeyTokens, metadata_api_key
from kit.context import Principal, current_request
from kit.error_details import Reason
from kit.errors import PermissionDenied, Unauthenticated
from kit.interceptors.base import Metadata, WrappingInterceptor
from kit.permissions import missing
from kit.tokens import SERVICE_ACCOUNT_ACTOR, AccessTokenVerifier

INTERNAL_TOKEN_HEADER = "x-internal-token"


class AccessInterceptor(WrappingInterceptor):
    def __init__(
        self,
        rules: dict[str, AccessRule],
        verifier: AccessTokenVerifier,
        internal_api_token: str,
        api_keys: ApiKeyTokens | None = None,
    ) -> None:
        self._rules = rules
        self._verifier = verifier
        self._internal_api_token = internal_api_token.encode()
        # Presented API keys become access tokens here (None: keys are refused).
        self._api_keys = api_keys

    @asynccontextmanager
    async def guard(self, method: str, metadata: Metadata, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        await self.check(method, metadata)
        yield

    async def check(self, method: str, metadata: Metadata) -> None:
        """Refuses the call unless the method's access rule lets this caller in."""
        rule = self._rules.get(method)
        if rule is None or rule.audience == access_pb2.AUDIENCE_UNSPECIFIED:
            raise PermissionDenied("this method has no access rule", reason=Reason.NO_ACCESS_RULE)
        if rule.audience == access_pb2.AUDIENCE_INTERNAL:
            await self._authenticate_service(metadata, rule)
        elif rule.audience == access_pb2.AUDIENCE_AUTHENTICATED:
            await self._authenticate(metadata, rule)
        elif rule.audience == access_pb2.AUDIENCE_PUBLIC and rule.accepts_bearer and _credential_in(metadata):
            # A token that was sent is checked like any other: never ignored.
            await self._authenticate(metadata, rule)

    async def _authenticate_service(self, metadata: Metadata, rule: AccessRule) -> None:
        """A platform service account's token carrying the rule's permissions.

        The shared internal token (deprecated, INTERNAL_API_TOKEN) still passes
        while one is configured, for callers not yet moved to service accounts."""
        offered = metadata.get(INTERNAL_TOKEN_HEADER, "").encode()
        if offered and self._internal_api_token and hmac.compare_digest(offered, self._internal_api_token):
            return
        if "authorization" not in metadata:
            raise Unauthenticated(
                "internal method: a platform service account's access token is required",
                reason=Reason.TOKEN_MISSING,
            )
        principal = await self._verified(metadata)
        if principal.actor_type != SERVICE_ACCOUNT_ACTOR or principal.tenant_id is not None:
            raise PermissionDenied(
                "internal method: only Tenantry's platform service accounts may call it",
                reason=Reason.PLATFORM_SERVICE_REQUIRED,
            )
        self._require(principal, rule)

    async def _verified(self, metadata: Metadata) -> Principal:
        api_key = metadata_api_key(metadata)
        if api_key is not None:
            if self._api_keys is None:
                raise Unauthenticated("this service does not accept API keys", reason=Reason.TOKEN_INVALID)
            token = await self._api_keys.access_token(api_key)
        else:
            scheme, _, token = metadata.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("a bearer access token or an API key is required", reason=Reason.TOKEN_MISSING)
        principal = await self._verifier.verify(token.strip())
        request = current_request()
        if request is not None:
            request.principal = principal
        return principal

    @staticmethod
    def _require(principal: Principal, rule: AccessRule) -> None:
        lacking = missing(principal.permissions, rule.permissions)
        if lacking:
            raise PermissionDenied(
                f"requires the permission: {', '.join(lacking)}",
                reason=Reason.PERMISSION_MISSING,
                metadata={"permission": ",".join(lacking)},
            )

    async def _authenticate(self, metadata: Metadata, rule: AccessRule) -> None:
        self._require(await self._verified(metadata), rule)


def _credential_in(metadata: Metadata) -> bool:
    return "authorization" in metadata or API_KEY_HEADER in metadata
