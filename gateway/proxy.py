"""One REST call: match the route, check it at the edge, call the upstream, answer JSON."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import grpc
import orjson
from aiohttp import web
from google.protobuf.descriptor import Descriptor

from gateway.descriptors import Contracts
from gateway.edge import (
    BEARER_CHALLENGE,
    EdgeAuthenticator,
    InFlightLimit,
    RateLimiter,
    authorization_header,
    deadline,
    traceparent,
)
from gateway.error_details import DetailDecoder
from gateway.http_body import FILE_STREAM_SECONDS, is_http_body, stream_http_body
from gateway.oauth_errors import oauth_error
from gateway.routes import Matched, MethodNotAllowed, RouteTable
from gateway.status import HTTP_STATUS, GatewayError
from gateway.streaming import stream_response
from gateway.transcoding import build_request, to_json
from gateway.upstreams import Upstreams
from kit.context import Principal

log = logging.getLogger(__name__)

CALL_INFO = "tenantry.call"
GATEWAY_TOKEN_HEADER = "x-gateway-token"
# RFC 6749 §5.1: a response carrying tokens (or a client secret) must not be stored by any cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TOKEN_FIELDS = frozenset({"access_token", "refresh_token", "secret", "client_secret"})


@dataclass
class CallInfo:
    """What the access log line reports about the call."""

    request_id: str
    client_ip: str
    rpc: str | None = None
    principal: Principal | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, document: Any, headers: dict[str, str] | None = None) -> web.Response:
    # orjson: several times cheaper than json.dumps per response, the same compact JSON.
    return web.Response(
        status=status,
        body=orjson.dumps(document),
        content_type="application/json",
        headers=headers,
    )


class Proxy:
    def __init__(
        self,
        contracts: Contracts,
        upstreams: Upstreams,
        authenticator: EdgeAuthenticator,
        limiter: RateLimiter,
        *,
        limited_methods: set[str],
        max_in_flight: int = 32,
        max_body_bytes: int,
        upstream_timeout: float,
        gateway_token: str = "",
        json_names: bool = False,
    ) -> None:
        self.routes = RouteTable(contracts.bindings)
        self._upstreams = upstreams
        self._authenticator = authenticator
        self._limiter = limiter
        self._limited = limited_methods
        self._in_flight = InFlightLimit(max_in_flight)
        self._max_body = max_body_bytes
        self._timeout = upstream_timeout
        self._gateway_token = gateway_token
        # Responses (and error details) by json_name rather than the proto field name.
        self._json_names = json_names
        self._details = DetailDecoder(contracts.pool, json_names=json_names)

    def route(self, request: web.Request) -> Matched:
        found = self.routes.match(request.method, request.rel_url.raw_path)
        if found is None:
            raise GatewayError(grpc.StatusCode.NOT_FOUND, f"no route for {request.rel_url.path}")
        if isinstance(found, MethodNotAllowed):
            raise GatewayError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{request.method} is not allowed here; allowed: {', '.join(found.allowed)}",
                http_status=405,
                headers={"Allow": ", ".join(found.allowed)},
            )
        return found

    async def handle(self, request: web.Request) -> web.StreamResponse:
        info: CallInfo = request[CALL_INFO]
        matched = self.route(request)
        binding = matched.binding
        info.rpc = binding.rpc.path
        name = binding.rpc.method.full_name
        if name in self._limited:
            self._in_flight.refuse_if_full(name)
            wait = self._limiter.retry_after(info.client_ip)
            if wait is not None:
                raise GatewayError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "too many requests; retry later",
                    headers={"Retry-After": str(wait)},
                )
        # The client address was decided at the edge (edge.client_address):
        # services trust this header from the gateway, so no client-written entry passes.
        metadata = [("x-request-id", info.request_id), ("x-forwarded-for", info.client_ip)]
        if self._gateway_token:
            metadata.append((GATEWAY_TOKEN_HEADER, self._gateway_token))
        authorization = authorization_header(request.headers.get("Authorization"))
        api_key = authorization_header(request.headers.get("X-Api-Key"), "X-Api-Key")
        info.principal, identity = await self._authenticator.identify(
            binding.rpc, authorization, api_key, client=info.client_ip
        )
        metadata += identity
        trace = traceparent(request.headers.get("traceparent"))
        if trace:
            metadata.append(("traceparent", trace))
        user_agent = request.headers.get("User-Agent", "")[:512]
        # gRPC metadata holds printable ASCII only; other bytes would fail the call.
        if user_agent and user_agent.isascii() and user_agent.isprintable():
            metadata.append(("x-client-user-agent", user_agent))

        body = await self._read_body(request)
        try:
            query = list(request.rel_url.query.items())
            message = build_request(binding, matched.path_values, query, body, content_type=request.content_type)
        except GatewayError as error:
            if error.field is not None:
                error.details = [self._details.bad_request(error.field, error.message)]
            raise
        limit = FILE_STREAM_SECONDS if is_http_body(binding.rpc.response_class.DESCRIPTOR) else self._timeout
        timeout = deadline(request.headers.get("grpc-timeout"), limit)
        call = self._upstreams.callable(binding.rpc)

        def failure(error: grpc.aio.AioRpcError) -> GatewayError:
            presented = authorization is not None or api_key is not None
            return upstream_error(error, token_presented=presented, details=self._details)

        def encode(reply: Any) -> Any:
            return to_json(reply, binding.response_body, json_names=self._json_names)

        if binding.rpc.server_streaming and is_http_body(binding.rpc.response_class.DESCRIPTOR):
            stream = call(message, metadata=metadata, timeout=timeout)
            return await stream_http_body(request, info.extra_headers, stream, failure=failure)
        if binding.rpc.server_streaming:
            return await stream_response(
                request,
                call(message, metadata=metadata, timeout=timeout),
                encode=encode,
                failure=failure,
                headers=info.extra_headers,
            )
        try:
            with self._in_flight.slot(name) if name in self._limited else contextlib.nullcontext():
                reply = await call(message, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise failure(error) from None
        headers = NO_STORE if carries_tokens(binding.rpc.response_class.DESCRIPTOR) else None
        return json_response(200, encode(reply), headers)

    async def _read_body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self._max_body:
            raise too_large(self._max_body)
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > self._max_body:
                raise too_large(self._max_body)
            chunks.append(chunk)
        return b"".join(chunks)


def too_large(limit: int) -> GatewayError:
    return GatewayError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, f"request body is larger than {limit} bytes", http_status=413
    )


@cache
def carries_tokens(descriptor: Descriptor) -> bool:
    """Whether the message (or one it holds) has a token field: decided by the
    contract, so that every RPC answering with tokens is covered."""
    return _carries_tokens(descriptor, set())


def _carries_tokens(descriptor: Descriptor, seen: set[str]) -> bool:
    if descriptor.full_name in seen:
        return False
    seen.add(descriptor.full_name)
    return any(
        field.name in TOKEN_FIELDS or (field.message_type is not None and _carries_tokens(field.message_type, seen))
        for field in descriptor.fields
    )


def upstream_error(
    error: grpc.aio.AioRpcError, *, token_presented: bool = False, details: DetailDecoder | None = None
) -> GatewayError:
    """The upstream's status as the gateway answers it: HTTP status, headers and, with a
    decoder, the google.rpc details of its grpc-status-details-bin."""
    oauth = oauth_error(error)
    if oauth is not None:
        return oauth
    code = error.code()
    trailers = error.trailing_metadata() or ()
    rich = details.from_trailers(code, trailers) if details is not None else None
    # Every 401 carries a challenge (RFC 9110 §15.5.2), but invalid_token only
    # answers a token that was sent (RFC 6750 §3): a wrong password is no token problem.
    headers = {}
    if code == grpc.StatusCode.UNAUTHENTICATED:
        error_code = ', error="invalid_token"' if token_presented else ""
        headers = {"WWW-Authenticate": BEARER_CHALLENGE + error_code}
    message = error.details() or code.name.lower()
    if code == grpc.StatusCode.UNAVAILABLE:
        # Always 503 with a hint: the service (or its database, or its view of
        # revocations) is expected back shortly.
        message = "the service is unavailable; retry later"
        headers = {"Retry-After": "1"}
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        hint = dict(trailers).get("retry-after")
        headers = {"Retry-After": str(hint) if str(hint or "").isdigit() else "1"}
    if rich is not None and rich.retry_after is not None:
        # A RetryInfo detail says how long; it wins over the older `retry-after` trailer.
        headers = {**headers, "Retry-After": str(rich.retry_after)}
    return GatewayError(
        code,
        message,
        http_status=HTTP_STATUS.get(code, 500),
        headers=headers,
        details=rich.details if rich is not None else None,
    )
