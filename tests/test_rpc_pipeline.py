"""kit's server steps (request, access, validation) run as one wrapper, in that order,
on a real grpc.aio server built as kit.server builds it (each method wrapped once when
the servicers are added, no interceptor): refusals, context, trailers and the log line."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from pydantic import SecretStr
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from kit.context import current_request
from kit.interceptors.access import INTERNAL_TOKEN_HEADER
from kit.interceptors.pipeline import RpcPipeline
from kit.logging import JsonFormatter
from kit.revocations import RevokedSessions
from kit.server import add_servicers, server_pipeline
from kit.tokens import AccessTokenVerifier

INTERNAL = "pipeline-internal-token"
SERVICE = "tenantry.auth.v1.AuthInternalService"
INTROSPECT = f"/{SERVICE}/IntrospectToken"


class _NoKeys:
    async def public_key(self, kid: str) -> Any | None:
        return None


def _verifier() -> AccessTokenVerifier:
    revoked = RevokedSessions()
    revoked.mark_complete()
    return AccessTokenVerifier(_NoKeys(), issuer="tenantry", audience="tenantry-api", revoked=revoked)


def _host(servicer: Any) -> Any:
    settings = SimpleNamespace(gateway_token=SecretStr(""), internal_api_token=SecretStr(INTERNAL))
    return SimpleNamespace(
        settings=settings,
        servicers=[
            (
                auth_service_pb2.DESCRIPTOR.services_by_name["AuthInternalService"],
                auth_service_pb2_grpc.add_AuthInternalServiceServicer_to_server,
                servicer,
            )
        ],
        verifier=_verifier(),
        api_keys=None,
    )


@asynccontextmanager
async def _server(seen: list[Any]) -> AsyncIterator[grpc.aio.Channel]:
    class Servicer(auth_service_pb2_grpc.AuthInternalServiceServicer):
        async def IntrospectToken(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = current_request()
            seen.append((request.token, call.request_id if call else None))
            return auth_service_pb2.IntrospectTokenResponse(active=True)

    server = grpc.aio.server()
    add_servicers(_host(Servicer()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)


def _call(channel: grpc.aio.Channel, raw: bool = False) -> Callable[..., Any]:
    return channel.unary_unary(
        INTROSPECT,
        request_serializer=(lambda data: data) if raw else auth_service_pb2.IntrospectTokenRequest.SerializeToString,
        response_deserializer=auth_service_pb2.IntrospectTokenResponse.FromString,
    )


def _run(scenario: Callable[[grpc.aio.Channel, list[Any]], Any]) -> list[Any]:
    seen: list[Any] = []

    async def main() -> None:
        async with _server(seen) as channel:
            await scenario(channel, seen)

    asyncio.run(main())
    return seen


def test_kit_wraps_each_method_once_when_the_servicers_are_added() -> None:
    added: list[Any] = []
    server = SimpleNamespace(
        add_generic_rpc_handlers=lambda handlers: added.extend(handlers),
        add_registered_method_handlers=lambda service, handlers: added.append(handlers),
    )
    add_servicers(_host(auth_service_pb2_grpc.AuthInternalServiceServicer()), server)  # type: ignore[arg-type]
    generic, registered = added
    assert isinstance(server_pipeline(_host(None)), RpcPipeline)
    details = SimpleNamespace(method=INTROSPECT, invocation_metadata=())
    # The same wrapped handler on every call, and not the servicer's own.
    assert generic.service(details) is generic.service(details)
    assert generic.service(details).unary_unary.__qualname__.startswith("RpcPipeline.")
    assert registered["IntrospectToken"].unary_unary.__qualname__.startswith("RpcPipeline.")
    assert generic.service(SimpleNamespace(method=f"/{SERVICE}/Nothing", invocation_metadata=())) is None


def test_access_is_checked_before_the_request_and_the_request_before_the_handler() -> None:
    async def scenario(channel: grpc.aio.Channel, seen: list[Any]) -> None:
        malformed = auth_service_pb2.IntrospectTokenRequest(token="a\x00b")
        # No credential: refused as such, whatever the request holds.
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await _call(channel)(malformed, timeout=5)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        internal = ((INTERNAL_TOKEN_HEADER, INTERNAL), ("x-request-id", "pipeline-1"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _call(channel)(malformed, metadata=internal, timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith("token:")
        assert ("x-request-id", "pipeline-1") in tuple(refused.value.trailing_metadata() or ())
        with pytest.raises(grpc.aio.AioRpcError) as undecodable:
            await _call(channel, raw=True)(b"\xff\xff\xff", metadata=internal, timeout=5)
        assert undecodable.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert seen == []

    _run(scenario)


def test_the_handler_runs_in_the_request_context_and_one_line_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(channel: grpc.aio.Channel, seen: list[Any]) -> None:
        metadata = ((INTERNAL_TOKEN_HEADER, INTERNAL), ("x-request-id", "pipeline-2"))
        call = _call(channel)(auth_service_pb2.IntrospectTokenRequest(token="t"), metadata=metadata, timeout=5)
        assert (await call).active
        assert ("x-request-id", "pipeline-2") in tuple(await call.trailing_metadata())

    with caplog.at_level(logging.INFO, logger="tenantry.rpc"):
        seen = _run(scenario)
    assert seen == [("t", "pipeline-2")]
    lines = [record for record in caplog.records if record.name == "tenantry.rpc"]
    assert len(lines) == 1
    entry = json.loads(JsonFormatter("auth").format(lines[0]))
    assert entry["message"] == "rpc" and entry["method"] == INTROSPECT and entry["status"] == "OK"
    assert entry["request_id"] == "pipeline-2" and entry["user_id"] is None
    assert entry["ts"].endswith("+00:00") and len(entry["ts"]) == len("2026-01-01T00:00:00.000+00:00")
