"""Request id, the request context, error mapping and one JSON log line per RPC."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import unquote

import grpc
from grpc_status import rpc_status

from kit.context import RequestContext, enter_request, leave_request
from kit.db import database_unavailable, is_connection_failure
from kit.error_details import rich_status
from kit.errors import DomainError
from kit.interceptors.base import Metadata, WrappingInterceptor
from kit.logging import log_fields

log = logging.getLogger("tenantry.rpc")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The gateway presents GATEWAY_TOKEN in this header; only then are the client
# address and user agent it forwards believed (any gRPC caller could write
# x-forwarded-for, and the audit trail records it).
GATEWAY_TOKEN_HEADER = "x-gateway-token"


def peer_ip(peer: str | None) -> str | None:
    """The address part of a grpc peer string such as ipv4:127.0.0.1:5000 or ipv6:[::1]:5000."""
    if not peer:
        return None
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return unquote(rest).rsplit(":", 1)[0].strip("[]")
    return None


class RequestInterceptor(WrappingInterceptor):
    def __init__(self, *, gateway_token: str = "") -> None:
        self._gateway_token = gateway_token.encode()

    @asynccontextmanager
    async def guard(self, method: str, metadata: Metadata, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        offered = metadata.get("x-request-id", "")
        from_gateway = self._from_gateway(metadata)
        request = RequestContext(
            request_id=offered if _REQUEST_ID.fullmatch(offered) else str(uuid.uuid4()),
            method=method,
            peer_ip=self._client_ip(metadata, context, from_gateway=from_gateway),
            user_agent=self._user_agent(metadata, from_gateway=from_gateway),
        )
        token = enter_request(request)
        context.set_trailing_metadata((("x-request-id", request.request_id),))
        started = time.perf_counter()
        status = grpc.StatusCode.OK
        try:
            yield
        except DomainError as error:
            status = error.code
            await _abort_with(context, error, request.request_id)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            status = context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[assignment]
            raise
        except asyncio.CancelledError:
            status = grpc.StatusCode.CANCELLED
            raise
        except Exception as error:
            if is_connection_failure(error):
                # Database work outside a unit of work (which maps it itself).
                status = grpc.StatusCode.UNAVAILABLE
                await _abort_with(context, database_unavailable(), request.request_id)
            status = grpc.StatusCode.INTERNAL
            log.error("unhandled error", exc_info=True, extra={"method": method, "request_id": request.request_id})
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {request.request_id})")
        finally:
            principal = request.principal
            log_fields(
                log,
                logging.INFO,
                "rpc",
                {
                    "method": method,
                    "status": status.name if isinstance(status, grpc.StatusCode) else str(status),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "request_id": request.request_id,
                    "tenant_id": str(principal.tenant_id) if principal and principal.tenant_id else None,
                    "user_id": str(principal.user_id) if principal else None,
                },
            )
            leave_request(token)

    def _from_gateway(self, metadata: Metadata) -> bool:
        offered = metadata.get(GATEWAY_TOKEN_HEADER, "").encode()
        return bool(self._gateway_token) and hmac.compare_digest(offered, self._gateway_token)

    def _user_agent(self, metadata: Metadata, *, from_gateway: bool) -> str | None:
        forwarded = metadata.get("x-client-user-agent") if from_gateway else None
        return (forwarded or metadata.get("user-agent") or "")[:512] or None

    def _client_ip(self, metadata: Metadata, context: grpc.aio.ServicerContext, *, from_gateway: bool) -> str | None:
        forwarded = metadata.get("x-forwarded-for")
        if from_gateway and forwarded:
            return forwarded.split(",")[0].strip()[:64] or None
        return peer_ip(context.peer())


async def _abort_with(context: grpc.aio.ServicerContext, error: DomainError, request_id: str) -> None:
    """Ends the call with the error's status, its google.rpc details in `grpc-status-details-bin`
    (code and message the same as the call's), and `retry-after` when a retry may succeed."""
    code, message = error.code, error.message
    details = rpc_status.to_status(rich_status(code.value[0], message, error.details())).trailing_metadata
    trailers: tuple[tuple[str, str | bytes], ...] = (("x-request-id", request_id), *details)
    if error.retry_after_seconds is not None:
        trailers += (("retry-after", str(error.retry_after_seconds)),)
    await context.abort(code, message, trailers)
