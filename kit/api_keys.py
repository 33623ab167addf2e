"""API keys as callers present them, turned into short-lived access tokens.

A key (`tnt_<prefix>_<secret>`) is long-lived and checked by the auth service
alone, which holds its keyed hash. Whoever receives one (the gateway, any
service, a backend built on Tenantry) exchanges it once through
`ApiKeyService.ExchangeApiKey` for an access token of at most five minutes and
keeps that token until shortly before it expires: the token is then verified
like any other (signature, claims, and its `sid`, the key's id, against the
revocation stream), so revoking a key is refused everywhere within a second
and no request but the first of each few minutes costs a call to auth.

`ApiKeyTokens` is that cache: bounded, one exchange in flight per key however
many requests wait on it, refusals remembered only briefly, and nothing
remembered when auth cannot answer (the caller gets UNAVAILABLE: fail closed).

    tokens = ApiKeyTokens(remote_exchange(channel))
    key = presented_api_key(authorization_header, x_api_key_header)
    if key is not None:
        access_token = await tokens.access_token(key)   # then verify it as a bearer token
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from tenantry.auth.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc

from kit.error_details import Reason
from kit.errors import Unauthenticated, Unavailable

API_KEY_HEADER = "x-api-key"
API_KEY_MARK = "tnt_"
# tnt_ + 8 characters of prefix + _ + 52 characters of secret (256 bits), RFC 4648 base32 in lower case.
API_KEY_PATTERN = re.compile(r"tnt_([a-z2-7]{8})_([a-z2-7]{52})")
MALFORMED = "API key is malformed: expected tnt_<prefix>_<secret> as shown when it was created"
# Tokens remembered per process: a few thousand keys in use per replica.
API_KEYS_REMEMBERED = 4096
# Refusals remembered per process, in a table of their own: a flood of made-up
# keys pushes out other refusals, never the tokens of keys in use.
REFUSALS_REMEMBERED = 1024
# A refused key is answered from memory this long, so a client retrying a
# revoked key in a loop does not become a loop of calls to auth; short, since
# nothing else is gained by keeping it.
REFUSAL_SECONDS = 2.0
# A token is used until this long before it expires (or a quarter of its life,
# if shorter), so that it is still valid when the service it goes to checks it.
RENEW_BEFORE_SECONDS = 30.0
EXCHANGE_TIMEOUT_SECONDS = 5.0


def api_key_prefix(api_key: str) -> str:
    """The key's visible prefix; Unauthenticated, saying what a key looks like, when it is not a key."""
    found = API_KEY_PATTERN.fullmatch(api_key)
    if found is None:
        raise Unauthenticated(MALFORMED, reason=Reason.API_KEY_INVALID)
    return found.group(1)


def is_api_key(credential: str) -> bool:
    """Whether a bearer credential is meant as an API key (rather than an access token)."""
    return credential.startswith(API_KEY_MARK)


def presented_api_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key a caller presents, from `x-api-key` or `Authorization: Bearer tnt_...`;
    None when it presents none (an access token, or nothing).

    Unauthenticated when the `x-api-key` value is no key, or when both headers carry a
    credential: which one would count is exactly what the caller did not say."""
    scheme, _, credential = (authorization or "").partition(" ")
    bearer = credential.strip() if scheme.lower() == "bearer" else ""
    if x_api_key is not None:
        if authorization is not None:
            raise Unauthenticated(
                "send either an Authorization header or an x-api-key header, not both", reason=Reason.API_KEY_INVALID
            )
        api_key_prefix(x_api_key.strip())
        return x_api_key.strip()
    if bearer and is_api_key(bearer):
        api_key_prefix(bearer)
        return bearer
    return None


def metadata_api_key(metadata: dict[str, str]) -> str | None:
    """presented_api_key for gRPC metadata (lower-case keys)."""
    return presented_api_key(metadata.get("authorization"), metadata.get(API_KEY_HEADER))


@dataclass(frozen=True, slots=True)
class ExchangedToken:
    access_token: str
    # Seconds the token stays valid from the moment the answer arrived.
    expires_in: float


# Turns a key into a token; raises Unauthenticated for a refused key, any other DomainError otherwise.
Exchange = Callable[[str], Awaitable[ExchangedToken]]


@dataclass(slots=True)
class _Remembered:
    # Monotonic time after which the entry is not used.
    until: float
    access_token: str | None = None
    refusal: str | None = None


class ApiKeyTokens:
    """Presented API keys to access tokens, exchanged once and cached.

    Entries are kept under the SHA-256 of the key, so the tables hold no key
    itself; a token is as short-lived as the exchange made it.
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        remembered: int = API_KEYS_REMEMBERED,
        refusals_remembered: int = REFUSALS_REMEMBERED,
        refusal_seconds: float = REFUSAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._exchange = exchange
        self._refusal_seconds = refusal_seconds
        self._clock = clock
        # Insertion-ordered: when one is full, its oldest entry goes first.
        self._tokens: dict[bytes, _Remembered] = {}
        self._refusals: dict[bytes, _Remembered] = {}
        self._remembered = remembered
        self._refusals_remembered = refusals_remembered
        self._in_flight: dict[bytes, asyncio.Task[_Remembered]] = {}
        # Exchanges made so far (each a call to auth), for tests and metrics.
        self.exchanges = 0

    async def access_token(self, api_key: str, *, before_exchange: Callable[[], None] | None = None) -> str:
        """An access token for the key, from memory or from one exchange; Unauthenticated when refused.

        before_exchange runs when the key must be exchanged (it is in neither table): it
        may refuse by raising, so that a caller spraying keys costs auth nothing more."""
        api_key_prefix(api_key)
        digest = hashlib.sha256(api_key.encode()).digest()
        entry = self._tokens.get(digest) or self._refusals.get(digest)
        if entry is None or self._clock() >= entry.until:
            self._tokens.pop(digest, None)
            self._refusals.pop(digest, None)
            if before_exchange is not None:
                before_exchange()
            entry = await self._exchanged(digest, api_key)
        if entry.refusal is not None:
            raise Unauthenticated(entry.refusal, reason=Reason.API_KEY_INVALID)
        assert entry.access_token is not None
        return entry.access_token

    async def _exchanged(self, digest: bytes, api_key: str) -> _Remembered:
        task = self._in_flight.get(digest)
        if task is None:
            # A task of its own: a caller that gives up (its deadline passed) must
            # not cancel the exchange the others wait on.
            task = asyncio.create_task(self._exchange_once(digest, api_key))
            self._in_flight[digest] = task
            task.add_done_callback(lambda done: self._finished(digest, done))
        return await asyncio.shield(task)

    def _finished(self, digest: bytes, task: asyncio.Task[_Remembered]) -> None:
        self._in_flight.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody awaited any more is not reported as lost

    async def _exchange_once(self, digest: bytes, api_key: str) -> _Remembered:
        self.exchanges += 1
        started = self._clock()
        try:
            exchanged = await self._exchange(api_key)
        except Unauthenticated as refused:
            entry = _Remembered(until=started + self._refusal_seconds, refusal=refused.message)
        else:
            lifetime = max(0.0, exchanged.expires_in)
            # Counted from before the call: the token's own clock started no earlier.
            until = started + lifetime - min(RENEW_BEFORE_SECONDS, lifetime / 4)
            entry = _Remembered(until=until, access_token=exchanged.access_token)
        if entry.refusal is None:
            _remember(self._tokens, self._remembered, digest, entry)
        else:
            _remember(self._refusals, self._refusals_remembered, digest, entry)
        return entry


def _remember(table: dict[bytes, _Remembered], bound: int, digest: bytes, entry: _Remembered) -> None:
    if bound <= 0:
        return
    while len(table) >= bound:
        del table[next(iter(table))]
    table[digest] = entry


def exchange_through(call: Callable[[str], Awaitable[Any]]) -> Exchange:
    """An exchange that calls ExchangeApiKey through call (a stub, the gateway's upstream).

    Only UNAUTHENTICATED from auth is a refusal of the key; any other failure
    (auth unreachable, its database down) is UNAVAILABLE, never remembered,
    and never taken for a valid key."""

    async def exchange(api_key: str) -> ExchangedToken:
        try:
            reply = await call(api_key)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise Unauthenticated(
                    error.details() or "API key is not valid", reason=Reason.API_KEY_INVALID
                ) from None
            raise Unavailable(
                "cannot check API keys: the auth service is unreachable; retry shortly",
                reason=Reason.AUTH_SERVICE_UNAVAILABLE,
                retry_after_seconds=1,
            ) from None
        return ExchangedToken(str(reply.access_token), float(reply.expires_in))

    return exchange


def remote_exchange(
    channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]] = (), *, timeout: float = EXCHANGE_TIMEOUT_SECONDS
) -> Exchange:
    """An exchange through the auth service's ExchangeApiKey over channel."""
    stub = api_keys_service_pb2_grpc.ApiKeyServiceStub(channel)

    def call(api_key: str) -> Awaitable[Any]:
        request = api_keys_service_pb2.ExchangeApiKeyRequest(api_key=api_key)
        return stub.ExchangeApiKey(request, metadata=tuple(metadata), timeout=timeout, wait_for_ready=True)

    return exchange_through(call)
