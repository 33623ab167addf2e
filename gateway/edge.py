"""What the gateway does at the edge, before any upstream is called."""

from __future__ import annotations

import ipaddress
import math
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import grpc

from gateway.descriptors import Rpc
from gateway.error_details import edge_details
from gateway.status import GatewayError
from kit.api_keys import API_KEY_HEADER, ApiKeyTokens, presented_api_key
from kit.context import Principal
from kit.error_details import Reason, error_info, retry_info
from kit.errors import DomainError, Unauthenticated
from kit.permissions import missing
from kit.revocations import RevokedSessions
from kit.tokens import AccessTokenVerifier, CachedJwks

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Metadata = list[tuple[str, str]]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_GRPC_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
MIN_DEADLINE_SECONDS = 0.001
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
BEARER_CHALLENGE = 'Bearer realm="tenantry"'


def request_id(offered: str | None) -> str:
    return offered if offered and _REQUEST_ID.fullmatch(offered) else str(uuid.uuid4())


def authorization_header(value: str | None, name: str = "Authorization") -> str | None:
    """The Authorization (or X-Api-Key) header, if it is printable ASCII (RFC 9110
    allows no more in a credential); anything else is no credential: 401."""
    if value is None:
        return None
    if not value.isascii() or not value.isprintable():
        raise GatewayError(
            grpc.StatusCode.UNAUTHENTICATED,
            f"the {name} header must be printable ASCII",
            headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_request"'},
        )
    return value


def deadline(grpc_timeout: str | None, default: float) -> float:
    """The upstream deadline: ours, or the client's grpc-timeout if shorter.

    gRPC's timers work in milliseconds: a shorter deadline would be honoured or
    not depending on how fast the upstream happens to answer, so it is refused
    at once, the same way every time."""
    if grpc_timeout:
        found = _GRPC_TIMEOUT.fullmatch(grpc_timeout.strip())
        if found is None:
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, "grpc-timeout header is malformed")
        requested = int(found.group(1)) * _TIMEOUT_UNITS[found.group(2)]
        if requested < MIN_DEADLINE_SECONDS:
            raise GatewayError(grpc.StatusCode.DEADLINE_EXCEEDED, "grpc-timeout is shorter than any upstream call")
        return min(default, requested)
    return default


def client_address(peer: str, forwarded_for: str | None, trusted: list[IPNetwork]) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the
    rightmost X-Forwarded-For entry that is not a trusted proxy itself.
    Entries left of that one were written by the client and prove nothing."""
    address = peer
    if forwarded_for and _is_trusted(peer, trusted):
        for entry in reversed([part.strip() for part in forwarded_for.split(",")]):
            address = entry
            if not _is_trusted(entry, trusted):
                break
    try:
        return _normalized(address)
    except ValueError:
        return peer


@lru_cache(maxsize=4096)
def _normalized(address: str) -> str:
    """The address as ipaddress writes it; remembered, as the same clients come back (bounded)."""
    return str(ipaddress.ip_address(address))


def _is_trusted(address: str, trusted: list[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def traceparent(value: str | None) -> str | None:
    normalized = value.strip().lower() if value else ""
    return normalized if _TRACEPARENT.fullmatch(normalized) else None


class InFlightLimit:
    """At most `limit` calls of each rate-limited method in flight through this gateway.

    Those methods (login, refresh, accepting an invitation) wait on password
    hashing upstream; past the limit a caller is told 429 at once, by the
    gateway alone, instead of queueing behind a burst that the upstream would
    refuse anyway, only later."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_flight: dict[str, int] = {}

    def refuse_if_full(self, method: str) -> None:
        """429 now if no slot is free: asked as soon as the route is known, so that
        a burst is refused without its bodies being read, parsed or its tokens checked."""
        if self._in_flight.get(method, 0) >= self._limit:
            raise GatewayError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too many requests in progress; retry shortly",
                headers={"Retry-After": "1"},
            )

    @contextmanager
    def slot(self, method: str) -> Iterator[None]:
        # Asked again here: the slot is taken only around the upstream call, so a
        # client sending its body slowly holds none meanwhile.
        self.refuse_if_full(method)
        self._in_flight[method] = self._in_flight.get(method, 0) + 1
        try:
            yield
        finally:
            self._in_flight[method] -= 1


class RateLimiter:
    """A token bucket per client address: `per_minute` requests, refilled evenly."""

    def __init__(self, per_minute: int) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}

    def retry_after(self, client: str) -> int | None:
        """None if the request may pass (and is counted), else seconds to wait."""
        wait = self.exhausted(client)
        if wait is None:
            self.charge(client)
        return wait

    def exhausted(self, client: str) -> int | None:
        """Seconds to wait when the client has nothing left, else None; counts nothing."""
        tokens = self._tokens(client, time.monotonic())
        return None if tokens >= 1.0 else max(1, math.ceil((1.0 - tokens) / self._rate))

    def charge(self, client: str) -> None:
        """Counts one request of the client's."""
        now = time.monotonic()
        self._buckets[client] = (max(0.0, self._tokens(client, now) - 1.0), now)
        self._forget_idle(now)

    def _tokens(self, client: str, now: float) -> float:
        tokens, updated = self._buckets.get(client, (self._capacity, now))
        return min(self._capacity, tokens + (now - updated) * self._rate)

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) > 10_000:
            full_after = self._capacity / self._rate
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


class EdgeAuthenticator:
    """Verifies bearer tokens against the JWKS of the configured source
    (gateway.jwks), cached; an unknown kid triggers a refresh. An API key
    (`Authorization: Bearer tnt_...` or `X-Api-Key`) is first exchanged for an
    access token, cached (kit.api_keys), which then goes on as the bearer.
    Revocation is left to the services, which the token is passed on to."""

    def __init__(
        self,
        fetch_jwks: Any,
        *,
        issuer: str,
        audience: str,
        api_keys: ApiKeyTokens | None = None,
        refused_keys_per_minute: int = 30,
    ) -> None:
        # The fetch answers UNAVAILABLE itself when no keys can be had: the token may well be valid.
        self.jwks = CachedJwks(fetch_jwks, min_refresh_interval=1.0)
        # Services check revocation; the gateway's own list stays empty and complete.
        unchecked = RevokedSessions()
        unchecked.mark_complete()
        self._verifier = AccessTokenVerifier(self.jwks, issuer=issuer, audience=audience, revoked=unchecked)
        self.api_keys = api_keys
        # Refused API keys per client address: past the budget, that address's keys
        # that would need an exchange get 429, so spraying guesses costs auth nothing.
        # Keys already exchanged (and refusals remembered) are answered from memory as before.
        self._refused_keys = RateLimiter(refused_keys_per_minute)

    async def identify(
        self, rpc: Rpc, authorization: str | None, api_key: str | None = None, *, client: str
    ) -> tuple[Principal | None, Metadata]:
        """Who calls, as the upstream is told: the verified token, x-user-id and
        x-tenant-id, or for a public RPC the credential as sent (its service
        verifies it). An RPC public by the gateway's policy has no such service
        rule behind it: a token sent to it is verified here, and passed on only then."""
        if rpc.public and not (rpc.by_policy and (authorization is not None or api_key is not None)):
            sent: Metadata = [] if authorization is None else [("authorization", authorization)]
            if api_key is not None:
                sent.append((API_KEY_HEADER, api_key))
            return None, sent
        token, principal = await self.authenticate(authorization, api_key, client=client)
        lacking = missing(principal.permissions, rpc.permissions)
        if lacking:
            raise GatewayError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"requires the permission: {', '.join(lacking)}",
                details=edge_details([error_info(Reason.PERMISSION_MISSING, {"permission": ",".join(lacking)})]),
            )
        metadata = [("authorization", f"Bearer {token}"), ("x-user-id", str(principal.user_id))]
        if principal.tenant_id:
            metadata.append(("x-tenant-id", str(principal.tenant_id)))
        return principal, metadata

    async def authenticate(
        self, authorization: str | None, api_key: str | None = None, *, client: str
    ) -> tuple[str, Principal]:
        scheme, _, token = (authorization or "").partition(" ")
        if api_key is None and (scheme.lower() != "bearer" or not token.strip()):
            raise GatewayError(
                grpc.StatusCode.UNAUTHENTICATED,
                "a bearer access token or an API key is required",
                headers={"WWW-Authenticate": BEARER_CHALLENGE},
                details=edge_details([error_info(Reason.TOKEN_MISSING)]),
            )
        try:
            presented = presented_api_key(authorization, api_key)
            if presented is not None:
                if self.api_keys is None:
                    raise GatewayError(
                        grpc.StatusCode.UNAUTHENTICATED,
                        "API keys are not accepted here",
                        headers={"WWW-Authenticate": BEARER_CHALLENGE},
                        details=edge_details([error_info(Reason.TOKEN_INVALID)]),
                    )
                try:
                    token = await self.api_keys.access_token(presented, before_exchange=lambda: self._admit(client))
                except Unauthenticated:
                    self._refused_keys.charge(client)
                    raise
            return token.strip(), await self._verifier.verify(token.strip())
        except DomainError as error:
            raise GatewayError(
                error.code,
                error.message,
                details=edge_details(error.details()),
                headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_token"'}
                if error.code == grpc.StatusCode.UNAUTHENTICATED
                else {},
            ) from None

    def _admit(self, client: str) -> None:
        wait = self._refused_keys.exhausted(client)
        if wait is not None:
            raise GatewayError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too many refused API keys from this address; retry later",
                headers={"Retry-After": str(wait)},
                details=edge_details([error_info(Reason.TOO_MANY_ATTEMPTS), retry_info(wait)]),
            )
