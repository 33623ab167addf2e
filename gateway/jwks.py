"""Where the edge gets the keys that sign access tokens, whatever contracts are loaded.

Either an HTTP JWKS document (`GATEWAY_JWKS_URL`, e.g. auth's own REST route
`/.well-known/jwks.json`) or the auth service's `GetJwks` RPC, called with the
generated stubs on the upstream that `GATEWAY_UPSTREAMS` names for it: a
gateway serving only a team's contract verifies Tenantry's tokens all the same.
kit.tokens.CachedJwks caches the keys and refetches them, single-flight and at
most once a second, on an unknown kid. A failed fetch is remembered for a
moment, so a flood of made-up kids while the source is down costs no flood of
fetches; it is always 503 (the token may well be valid), never 401.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import grpc
import jwt
from google.protobuf import json_format
from tenantry.auth.v1 import auth_service_pb2

from gateway.status import GatewayError
from gateway.upstreams import Upstreams
from kit.tokens import ALGORITHM

log = logging.getLogger("tenantry.gateway")

FETCH_TIMEOUT_SECONDS = 5.0
# After a failed fetch, requests needing keys are refused at once for this long.
FAILED_FETCH_HOLD_SECONDS = 0.5
MAX_DOCUMENT_BYTES = 1_048_576
UNAVAILABLE_MESSAGE = "cannot verify tokens: the signing keys (JWKS) cannot be fetched; retry later"


def check_jwks_url(url: str) -> str:
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"GATEWAY_JWKS_URL: {url!r} is not an http(s) URL")
    return url


class JwksSource:
    """The keys as a list of JWKs, from the URL if one is set, else from GetJwks."""

    def __init__(self, upstreams: Upstreams, *, url: str, method: str) -> None:
        self._upstreams = upstreams
        self._url = check_jwks_url(url)
        self._method = method
        self._session: aiohttp.ClientSession | None = None
        self._failed_at = float("-inf")

    @property
    def description(self) -> str:
        return self._url or f"{self._method} on {self._method_service()}'s upstream"

    def _method_service(self) -> str:
        return self._method.strip("/").partition("/")[0]

    async def __call__(self) -> list[dict[str, str]]:
        if time.monotonic() - self._failed_at < FAILED_FETCH_HOLD_SECONDS:
            raise _unavailable()
        try:
            return await (self._from_url() if self._url else self._from_upstream())
        except (TimeoutError, aiohttp.ClientError, grpc.aio.AioRpcError, ValueError) as error:
            self._failed_at = time.monotonic()
            log.warning("JWKS fetch failed", extra={"source": self.description, "error": _reason(error)})
            raise _unavailable() from None

    async def _from_url(self) -> list[dict[str, str]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS))
        async with self._session.get(self._url, headers={"Accept": "application/json"}) as response:
            if response.status != 200:
                raise ValueError(f"answered HTTP {response.status}")
            body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError("the document is larger than 1 MiB")
        return _keys_of(json.loads(body))

    async def _from_upstream(self) -> list[dict[str, str]]:
        service = self._method_service()
        if not self._upstreams.addresses(service):
            raise GatewayError(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot verify tokens: no JWKS source is configured (GATEWAY_JWKS_URL, or an upstream "
                f"for {service} in GATEWAY_UPSTREAMS)",
                headers={"Retry-After": "1"},
            )
        call = self._upstreams.unary_unary(
            service,
            self._method,
            request_serializer=auth_service_pb2.GetJwksRequest.SerializeToString,
            response_deserializer=auth_service_pb2.Jwks.FromString,
        )
        # wait_for_ready rides out a reconnect (auth restarting with a new key).
        reply = await call(auth_service_pb2.GetJwksRequest(), timeout=FETCH_TIMEOUT_SECONDS, wait_for_ready=True)
        return _keys_of(json_format.MessageToDict(reply, preserving_proto_field_name=True))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _keys_of(document: Any) -> list[dict[str, str]]:
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
        raise ValueError("not a JWKS document (no 'keys' list)")
    usable = [key for key in keys if _is_usable(key)]
    if not usable:
        raise ValueError("the JWKS document holds no EdDSA key")
    return usable


def _is_usable(key: dict[str, Any]) -> bool:
    """An EdDSA key with a kid that loads: anything else could never verify a token."""
    if not isinstance(key.get("kid"), str) or key.get("alg") != ALGORITHM:
        return False
    try:
        jwt.PyJWK(key, algorithm=ALGORITHM)
    except (jwt.PyJWKError, ValueError, TypeError):
        return False
    return True


def _reason(error: Exception) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error) or type(error).__name__


def _unavailable() -> GatewayError:
    return GatewayError(grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_MESSAGE, headers={"Retry-After": "1"})
