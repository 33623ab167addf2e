"""Verifies callers' credentials locally: no call to Tenantry per request.

    verifier = TenantryVerifier("127.0.0.1:50051", credentials=client_credentials(…))  # see credentials.py
    await verifier.start()          # fetches keys lazily, follows revocations
    principal = await verifier.authenticate(authorization="Bearer …")
    await verifier.close()

Access tokens are checked as Tenantry's services check them (tokens.py) with
keys from auth's GetJwks, cached and fetched again on an unknown kid, and
their session against the revocation stream (fail closed: UNAVAILABLE until
the first snapshot is in). API keys (`tnt_<prefix>_<secret>`, as a bearer
token or in `x-api-key`) go through an ApiKeyExchange (by default auth's
ExchangeApiKey, see api_keys.py): the key is exchanged for a short-lived
access token, which is then verified like any other and reused until shortly
before it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from uuid import UUID

import grpc
from google.protobuf import json_format
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from tenantry_client.api_keys import AuthApiKeyExchange, presented_api_key
from tenantry_client.context import ACTOR_API_KEY, ACTOR_USER, Principal
from tenantry_client.credentials import CredentialSource
from tenantry_client.errors import InvalidToken, VerificationUnavailable
from tenantry_client.revocations import RevocationList, follow_revocations
from tenantry_client.tokens import CachedJwks, bearer_token, verified_claims

# An exchanged access token is used until this many seconds before its exp.
EXCHANGED_TOKEN_MARGIN_SECONDS = 30
EXCHANGED_TOKENS_REMEMBERED = 1024
# Reconnect quickly after auth restarts, so the revocation stream resumes at once.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)


class ApiKeyExchange(Protocol):
    """Turns an API key into a short-lived access token for the key's tenant and
    permissions; raises InvalidToken for an unknown, revoked or expired key."""

    async def exchange(self, api_key: str) -> str: ...


class TenantryVerifier:
    def __init__(
        self,
        auth_address: str,
        *,
        credentials: CredentialSource,
        issuer: str = "tenantry",
        audience: str = "tenantry-api",
        api_keys: ApiKeyExchange | Literal["auth"] | None = "auth",
        max_staleness: float = 5.0,
    ) -> None:
        self._channel = grpc.aio.insecure_channel(auth_address, options=CHANNEL_OPTIONS)
        self._auth = auth_service_pb2_grpc.AuthServiceStub(self._channel)
        self._credentials = credentials
        self._issuer = issuer
        self._audience = audience
        # "auth": exchanged through auth's ExchangeApiKey; None: API keys refused.
        self.api_keys = AuthApiKeyExchange(self._channel) if api_keys == "auth" else api_keys
        self.revocations = RevocationList(max_staleness=max_staleness)
        self.keys = CachedJwks(self._fetch_jwks)
        self._exchanged: dict[bytes, tuple[str, float]] = {}
        self._follower: asyncio.Task[None] | None = None

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel to auth, for an ApiKeyExchange to share."""
        return self._channel

    async def start(self) -> None:
        self._follower = asyncio.create_task(follow_revocations(self._channel, self._credentials, self.revocations))

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Waits until the revocation snapshot is in (until then every token is refused as UNAVAILABLE)."""
        deadline = time.monotonic() + timeout
        while not self.revocations.is_current():
            if time.monotonic() >= deadline:
                raise VerificationUnavailable("revocations did not load in time")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        await self._channel.close()

    async def authenticate(self, *, authorization: str | None = None, api_key: str | None = None) -> Principal:
        """The caller behind an `authorization` value or an `x-api-key` value."""
        key = presented_api_key(authorization, api_key)
        if key is not None:
            return await self.verify(await self._exchange(key))
        return await self.verify(bearer_token(authorization or ""))

    async def verify(self, token: str) -> Principal:
        # Revocations first: without them no token can be accepted, so a down
        # auth service answers UNAVAILABLE at once rather than after a key fetch.
        self.revocations.ensure_current()
        claims, _, _ = await verified_claims(token, self.keys, issuer=self._issuer, audience=self._audience)
        principal = principal_from_claims(claims)
        if self.revocations.is_revoked(principal.session_id):
            raise InvalidToken(
                "API key has been revoked" if principal.actor_type == ACTOR_API_KEY else "session has ended"
            )
        return principal

    async def _exchange(self, api_key: str) -> str:
        if self.api_keys is None:
            raise InvalidToken("API keys are not accepted here")
        # Remembered under a hash, so the process holds no key in the clear.
        digest = hashlib.sha256(api_key.encode()).digest()
        known = self._exchanged.get(digest)
        if known is not None and time.time() < known[1]:
            return known[0]
        token = await self.api_keys.exchange(api_key)
        claims, _, _ = await verified_claims(token, self.keys, issuer=self._issuer, audience=self._audience)
        if len(self._exchanged) >= EXCHANGED_TOKENS_REMEMBERED:
            del self._exchanged[next(iter(self._exchanged))]
        self._exchanged[digest] = (token, float(claims["exp"]) - EXCHANGED_TOKEN_MARGIN_SECONDS)
        return token

    async def _fetch_jwks(self) -> list[dict[str, str]]:
        try:
            jwks = await self._auth.GetJwks(auth_service_pb2.GetJwksRequest(), timeout=5, wait_for_ready=True)
        except grpc.aio.AioRpcError:
            raise VerificationUnavailable("cannot verify tokens: auth's keys are unreachable") from None
        return [json_format.MessageToDict(key, preserving_proto_field_name=True) for key in jwks.keys]


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        tenant = claims.get("tid")
        return Principal(
            user_id=UUID(claims["sub"]),
            tenant_id=UUID(tenant) if tenant else None,
            roles=frozenset(_strings(claims.get("roles", []))),
            permissions=frozenset(_strings(claims.get("perms", []))),
            session_id=UUID(claims["sid"]),
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            actor_type=_string(claims.get("actor_type", ACTOR_USER)),
        )
    except (ValueError, TypeError, AttributeError):
        raise InvalidToken("access token is invalid") from None


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("not a list of strings")
    return value
