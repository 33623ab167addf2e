"""API keys (`tnt_<prefix>_<secret>`) exchanged with auth for short-lived access tokens.

Auth alone holds the keys' hashes. `ApiKeyService.ExchangeApiKey` (public:
the key is the credential) answers an access token of at most five minutes
for the key's tenant and permissions, with `sid` the key's id, so a revoked
key's tokens are refused through the revocation stream within a second. The
verifier keeps each exchanged token until shortly before it expires, so only
the first request of every few minutes per key costs a call to auth.
"""

from __future__ import annotations

import re

import grpc
from tenantry.auth.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc

from tenantry_client.errors import InvalidToken, VerificationUnavailable

API_KEY_MARK = "tnt_"
API_KEY_PATTERN = re.compile(r"tnt_[a-z2-7]{8}_[a-z2-7]{52}")
EXCHANGE_TIMEOUT_SECONDS = 5.0


def presented_api_key(authorization: str | None, api_key: str | None) -> str | None:
    """The API key a caller presents (`x-api-key`, or `Authorization: Bearer tnt_…`), None for none.

    InvalidToken for a malformed key, or for both headers at once (which one
    would count is exactly what the caller did not say)."""
    scheme, _, credential = (authorization or "").partition(" ")
    bearer = credential.strip() if scheme.lower() == "bearer" else ""
    if api_key is not None:
        if authorization is not None:
            raise InvalidToken("send either an Authorization header or an x-api-key header, not both")
        return _well_formed(api_key.strip())
    if bearer.startswith(API_KEY_MARK):
        return _well_formed(bearer)
    return None


def _well_formed(api_key: str) -> str:
    if API_KEY_PATTERN.fullmatch(api_key) is None:
        raise InvalidToken("API key is malformed: expected tnt_<prefix>_<secret> as shown when it was created")
    return api_key


class AuthApiKeyExchange:
    """The ApiKeyExchange of tenantry_client.verifier, through auth's ExchangeApiKey."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = api_keys_service_pb2_grpc.ApiKeyServiceStub(channel)

    async def exchange(self, api_key: str) -> str:
        try:
            reply = await self._stub.ExchangeApiKey(
                api_keys_service_pb2.ExchangeApiKeyRequest(api_key=api_key),
                timeout=EXCHANGE_TIMEOUT_SECONDS,
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as error:
            # Only auth's own refusal says the key is bad; anything else may
            # hide a good key, so it is UNAVAILABLE, never taken for an answer.
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise InvalidToken(error.details() or "API key is not valid") from None
            raise VerificationUnavailable("cannot check API keys: the auth service is unreachable") from None
        return str(reply.access_token)
