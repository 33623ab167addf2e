"""Token verification for services other than auth: keys and revocations from the auth service."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from google.protobuf import json_format
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from kit.api_keys import ApiKeyTokens, remote_exchange
from kit.clients import internal_metadata
from kit.error_details import Reason
from kit.errors import Unavailable
from kit.revocations import RevokedSessions, follow_revocations
from kit.settings import ServiceSettings
from kit.tokens import AccessTokenVerifier, CachedJwks, PublicKeySource

Job = Callable[[], Coroutine[Any, Any, None]]


class KeysWhileRevocationsCurrent:
    """Hands out verification keys only while the revocation list is current.

    A token cannot be accepted without that list anyway; checking it first
    answers UNAVAILABLE at once, naming the reason, instead of first waiting
    on a key fetch from an auth service that may be down.
    """

    def __init__(self, keys: PublicKeySource, revoked: RevokedSessions) -> None:
        self._keys = keys
        self._revoked = revoked

    async def public_key(self, kid: str) -> Any | None:
        self._revoked.ensure_current()
        return await self._keys.public_key(kid)


def remote_verifier(
    settings: ServiceSettings, channel: grpc.aio.Channel
) -> tuple[AccessTokenVerifier, RevokedSessions, Job]:
    """A verifier whose keys come from the auth service's JWKS, cached; the
    revoked sessions it checks; and the background job that keeps them in step
    with the auth service (until its first snapshot, the verifier refuses every
    token with UNAVAILABLE)."""
    stub = auth_service_pb2_grpc.AuthServiceStub(channel)

    async def fetch_jwks() -> list[dict[str, str]]:
        try:
            jwks = await stub.GetJwks(auth_service_pb2.GetJwksRequest(), timeout=5, wait_for_ready=True)
        except grpc.aio.AioRpcError:
            raise Unavailable(
                "cannot verify tokens: the auth service's keys are unreachable",
                reason=Reason.KEYS_UNREACHABLE,
                retry_after_seconds=1,
            ) from None
        return [json_format.MessageToDict(key, preserving_proto_field_name=True) for key in jwks.keys]

    revoked = RevokedSessions(max_staleness=settings.revocation_max_staleness_seconds)
    verifier = AccessTokenVerifier(
        KeysWhileRevocationsCurrent(CachedJwks(fetch_jwks), revoked),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revoked=revoked,
    )
    metadata = internal_metadata(settings.internal_api_token.get_secret_value())

    async def follow() -> None:
        await follow_revocations(channel, metadata, revoked)

    return verifier, revoked, follow


def remote_api_keys(settings: ServiceSettings, channel: grpc.aio.Channel) -> ApiKeyTokens:
    """API keys exchanged through the auth service over channel, cached (see kit.api_keys).

    The exchange carries this service's internal credentials: its rule is public
    today, and whatever rule replaces it for service-to-service calls applies."""
    return ApiKeyTokens(remote_exchange(channel, internal_metadata(settings.internal_api_token.get_secret_value())))
