"""How Tenantry's own services authenticate to each other: platform service
accounts and the OAuth 2 client-credentials grant, instead of one shared token.

Each service holds its own credentials (SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET),
fetches an access token from auth's public token RPC, and refreshes it when
half its life has passed; a client interceptor puts it on every call of its
internal channels. Internal RPCs' access rules name the permission each call
needs (audit.ingest, auth.provision_owner, auth.revocations.watch), and the
server accepts only a platform service account's token carrying it. Auth
mints its own tokens in-process.

Bootstrapping: the JWKS is public, so verifying a token needs no credential;
WatchRevocations does, and gets it from the token RPC, which is public too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from tenantry.auth.v1 import service_accounts_service_pb2, service_accounts_service_pb2_grpc

# Platform accounts provisioned by auth have ids derived from their names, so
# a deployment names each service's client id without asking auth first.
_PLATFORM_ACCOUNTS = uuid.UUID("6f1c8e0e-3a52-4a4e-9a6f-8f2d4c1e7b10")
# What auth's own tokens name as their sid: revocable like a credential.
_MINTED = "minted"


def platform_account_id(name: str) -> uuid.UUID:
    return uuid.uuid5(_PLATFORM_ACCOUNTS, f"platform-service:{name}")


def minted_session_id(name: str) -> uuid.UUID:
    return uuid.uuid5(_PLATFORM_ACCOUNTS, f"{_MINTED}:{name}")


def platform_client_id(name: str) -> str:
    return f"sa_platform_{platform_account_id(name).hex}"


# (access token, seconds it lives)
TokenFetcher = Callable[[], Awaitable[tuple[str, int]]]


class ServiceTokens:
    """The service's current access token, fetched once at a time and renewed at half its life."""

    def __init__(self, fetch: TokenFetcher) -> None:
        self._fetch = fetch
        self._token = ""
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if time.monotonic() < self._renew_at:
            return self._token
        async with self._lock:
            if time.monotonic() >= self._renew_at:
                token, lifetime = await self._fetch()
                self._token, self._renew_at = token, time.monotonic() + lifetime / 2
        return self._token


def client_credentials_fetcher(channel: grpc.aio.Channel, client_id: str, client_secret: str) -> TokenFetcher:
    """Fetches tokens from auth's OAuthService over a channel that adds no token itself."""
    stub = service_accounts_service_pb2_grpc.OAuthServiceStub(channel)
    request = service_accounts_service_pb2.CreateTokenRequest(
        grant_type="client_credentials", client_id=client_id, client_secret=client_secret
    )

    async def fetch() -> tuple[str, int]:
        # A failure is raised as the gRPC error it is: the call being made fails
        # with it (a channel interceptor may raise nothing else), and is retried.
        reply = await stub.CreateToken(request, timeout=5, wait_for_ready=True)
        return reply.access_token, reply.expires_in

    return fetch


class _BearerToken:
    def __init__(self, tokens: ServiceTokens) -> None:
        self._tokens = tokens

    async def _authorized(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add("authorization", f"Bearer {await self._tokens.token()}")
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnaryBearer(_BearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._authorized(details), request)


class _UnaryStreamBearer(_BearerToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._authorized(details), request)


def bearer_interceptors(tokens: ServiceTokens) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors adding the service's access token to every unary and server-streaming call
    (grpc.aio files each interceptor under one kind only, so one per kind)."""
    return [_UnaryUnaryBearer(tokens), _UnaryStreamBearer(tokens)]
