"""The backend's own credential for its calls to Tenantry (the revocation stream, the audit ingest).

A CredentialSource answers the metadata of the next call; it is asked again
for every stream or batch, so a renewed or rotated credential is picked up.

- `internal_token(token)`: Tenantry's shared internal API token (deprecated
  where service accounts exist; what `make run` gives the example today).
- `client_credentials(auth_address, client_id, client_secret)`: a service
  account's access token from auth's OAuthService.CreateToken (the OAuth 2
  client-credentials grant), renewed at half its life. The account needs the
  permissions of the calls it makes (`auth.revocations.watch` for the
  revocation stream, `audit.ingest` for the internal audit ingest).
- `bearer(token)`, `renewed(fetch)`: any fixed token, or any token source.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

Metadata = Sequence[tuple[str, str]]
CredentialSource = Callable[[], Awaitable[Metadata]]
# An access token and the seconds it lives.
TokenFetch = Callable[[], Awaitable[tuple[str, int]]]


def internal_token(token: str) -> CredentialSource:
    async def metadata() -> Metadata:
        return (("x-internal-token", token),)

    return metadata


def bearer(token: str) -> CredentialSource:
    async def metadata() -> Metadata:
        return (("authorization", f"Bearer {token}"),)

    return metadata


def renewed(fetch: TokenFetch) -> CredentialSource:
    """A bearer token from fetch, fetched once at a time and again when half its life has passed."""
    return _RenewedToken(fetch).metadata


class _RenewedToken:
    def __init__(self, fetch: TokenFetch) -> None:
        self._fetch = fetch
        self._token = ""
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def metadata(self) -> Metadata:
        async with self._lock:
            if time.monotonic() >= self._renew_at:
                token, lifetime = await self._fetch()
                self._token, self._renew_at = token, time.monotonic() + lifetime / 2
        return (("authorization", f"Bearer {self._token}"),)


def client_credentials(auth_address: str, client_id: str, client_secret: str, *, scope: str = "") -> CredentialSource:
    """A service account's token through auth's OAuthService.CreateToken."""
    channel = grpc.aio.insecure_channel(auth_address)

    async def fetch() -> tuple[str, int]:
        # Imported when first used: the contract exists from the service-accounts release on.
        contract: Any = importlib.import_module("tenantry.auth.v1.service_accounts_service_pb2")
        stubs: Any = importlib.import_module("tenantry.auth.v1.service_accounts_service_pb2_grpc")
        reply = await stubs.OAuthServiceStub(channel).CreateToken(
            contract.CreateTokenRequest(
                grant_type="client_credentials", client_id=client_id, client_secret=client_secret, scope=scope
            ),
            timeout=10,
            wait_for_ready=True,
        )
        return str(reply.access_token), int(reply.expires_in)

    return renewed(fetch)
