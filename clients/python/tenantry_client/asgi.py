"""The caller verified for an ASGI application (FastAPI, Starlette, any ASGI app).

    app.add_middleware(TenantryMiddleware, verifier=verifier)   # or TenantryMiddleware(app, verifier=…)

    @app.post("/tickets", dependencies=[Depends(requires("app.tickets.write"))])
    async def create(principal: Principal = Depends(require_principal)): ...

The middleware verifies `Authorization: Bearer …` (or `x-api-key`) on every
HTTP request but the paths in `public`, answers 401, 403 or 503 as JSON when
it fails, and runs the application with the principal in context, where the
dependencies below (plain functions, so no framework is imported here) and
the row-level security helper find it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from tenantry_client.context import Principal, acting_as, require_principal
from tenantry_client.errors import PermissionMissing, TenantryClientError
from tenantry_client.verifier import TenantryVerifier

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["Principal", "TenantryMiddleware", "require_principal", "requires"]


class TenantryMiddleware:
    def __init__(self, app: ASGIApp, *, verifier: TenantryVerifier, public: Iterable[str] = ()) -> None:
        self.app = app
        self._verifier = verifier
        self._public = frozenset(public)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._public:
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", ())}
        try:
            principal = await self._verifier.authenticate(
                authorization=headers.get("authorization"), api_key=headers.get("x-api-key")
            )
        except TenantryClientError as refused:
            await _refuse(send, refused)
            return
        with acting_as(principal):
            await self.app(scope, receive, send)


def requires(*permissions: str) -> Callable[[], Principal]:
    """A dependency that answers the principal if it holds every permission.

    Refusals are FastAPI's HTTPException (403) when FastAPI is there, else PermissionMissing."""

    def dependency() -> Principal:
        principal = require_principal()
        try:
            principal.require(*permissions)
        except PermissionMissing as refused:
            try:
                from fastapi import HTTPException
            except ImportError:
                raise refused from None
            raise HTTPException(status_code=refused.http_status, detail=refused.message) from None
        return principal

    return dependency


async def _refuse(send: Send, refused: TenantryClientError) -> None:
    body = json.dumps({"code": refused.grpc_code.name, "message": refused.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refused.http_status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": refused.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
