"""The gateway's HTTP application: edge middleware, native endpoints, and the proxy for the rest."""

from __future__ import annotations

import asyncio
import logging
import time
import tomllib
from pathlib import Path
from typing import Any

import grpc
import swagger_ui_bundle
from aiohttp import web

from gateway.access_policy import parse_access_policy
from gateway.api_keys import edge_api_keys
from gateway.descriptor_sets import descriptor_set_paths
from gateway.descriptors import Contracts
from gateway.edge import EdgeAuthenticator, RateLimiter, client_address, request_id
from gateway.jwks import JwksSource
from gateway.openapi import openapi_document
from gateway.proxy import CALL_INFO, CallInfo, Proxy, json_response
from gateway.routes import MethodNotAllowed, check_no_clashes
from gateway.settings import GatewaySettings
from gateway.status import GatewayError, error_body
from gateway.upstreams import Upstreams
from kit.logging import log_fields

log = logging.getLogger("tenantry.http")

ROOT = Path(__file__).resolve().parent.parent
NAME = "Tenantry"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
ALLOWED_REQUEST_HEADERS = "Authorization, X-Api-Key, Content-Type, X-Request-Id, grpc-timeout, traceparent"
EXPOSED_HEADERS = "X-Request-Id, Retry-After, WWW-Authenticate"
# Swagger UI 5 (the swagger-ui-bundle-v2 package): 4.x cannot read OpenAPI 3.1.
SWAGGER_ASSETS = {
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "favicon-16x16.png",
    "favicon-32x32.png",
}
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tenantry API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/swagger-ui.css"><link rel="icon" href="/docs/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});</script>
</body></html>"""


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.contracts = Contracts(
            descriptor_set_paths(settings.descriptor_set, ROOT / "gen" / "tenantry.binpb"),
            parse_access_policy(settings.access_policy),
        )
        self.upstreams = Upstreams(settings.upstream_config())
        self.jwks = JwksSource(self.upstreams, url=settings.jwks_url, method=settings.jwks_method)
        self.origins = settings.origins()
        self.trusted_proxies = settings.trusted_networks()
        self.authenticator = EdgeAuthenticator(
            self.jwks,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            api_keys=edge_api_keys(self.contracts, self.upstreams, settings.api_key_exchange_method),
            refused_keys_per_minute=settings.rate_limit_per_minute,
        )
        self.proxy = Proxy(
            self.contracts,
            self.upstreams,
            self.authenticator,
            RateLimiter(settings.rate_limit_per_minute),
            limited_methods=settings.limited_methods(),
            max_in_flight=settings.in_flight_per_worker(),
            max_body_bytes=settings.max_body_bytes,
            upstream_timeout=settings.upstream_timeout_seconds,
            gateway_token=settings.gateway_token.get_secret_value(),
            json_names=settings.json_names == "json",
        )
        self.openapi = openapi_document(
            self.contracts, title=f"{NAME} API", version=VERSION, json_names=settings.json_names == "json"
        )
        self.exposed_services = sorted({binding.rpc.service for binding in self.contracts.bindings})
        self.native = {
            "/": self.root,
            "/health": self.health,
            "/api/v1/system/info": self.system_info,
            "/openapi.json": self.openapi_json,
            "/docs": self.docs,
        }
        check_no_clashes(self.contracts.bindings, reserved_paths=self.native)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self.edge])
        # [\s\S]: aiohttp matches the decoded path, and "." would miss a %0A in it (then a 404 exception, not ours).
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.dispatch)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        await self.jwks.close()
        await self.upstreams.close()

    # Edge ------------------------------------------------------------------

    @web.middleware
    async def edge(self, request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        client = client_address(request.remote or "", request.headers.get("X-Forwarded-For"), self.trusted_proxies)
        info = CallInfo(request_id(request.headers.get("X-Request-Id")), client)
        request[CALL_INFO] = info
        info.extra_headers = {"X-Request-Id": info.request_id, **self._cors(request.headers.get("Origin"))}
        try:
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                response: web.StreamResponse = self._preflight(request)
            else:
                response = await handler(request)
        except GatewayError as error:
            response = json_response(error.http_status, error.body(), error.headers)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.error("unhandled error", exc_info=self.settings.log_tracebacks, extra={"request_id": info.request_id})
            response = json_response(
                500, error_body(grpc.StatusCode.INTERNAL, f"internal error (request id {info.request_id})")
            )
        if not response.prepared:
            response.headers.update(info.extra_headers)
        principal = info.principal
        # Health probes come every few seconds from orchestrators: logged only when they fail.
        quiet = request.rel_url.path == "/health" and response.status == 200
        log_fields(
            log,
            logging.DEBUG if quiet else logging.INFO,
            "http",
            {
                "http_method": request.method,
                "path": request.rel_url.path,
                "status": response.status,
                "rpc": info.rpc,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "request_id": info.request_id,
                "tenant_id": str(principal.tenant_id) if principal and principal.tenant_id else None,
                "user_id": str(principal.user_id) if principal else None,
            },
        )
        return response

    def _cors(self, origin: str | None) -> dict[str, str]:
        if not origin or origin.rstrip("/") not in self.origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Vary": "Origin",
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        }

    def _preflight(self, request: web.Request) -> web.Response:
        wanted = request.headers["Access-Control-Request-Method"].upper()
        if request.rel_url.path in self.native:
            allowed = ["GET"]
        else:
            found = self.proxy.routes.match(wanted, request.rel_url.raw_path)
            if found is None:
                raise GatewayError(grpc.StatusCode.NOT_FOUND, f"no route for {request.rel_url.path}")
            allowed = list(found.allowed) if isinstance(found, MethodNotAllowed) else [wanted]
        headers: dict[str, str] = {}
        if self._cors(request.headers.get("Origin")):
            headers = {
                "Access-Control-Allow-Methods": ", ".join(allowed),
                "Access-Control-Allow-Headers": ALLOWED_REQUEST_HEADERS,
                "Access-Control-Max-Age": "600",
            }
        return web.Response(status=204, headers=headers)

    # Dispatch ----------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        native = self.native.get(request.rel_url.path)
        if native is not None or request.rel_url.path.startswith("/docs/"):
            if request.method not in ("GET", "HEAD"):
                raise GatewayError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{request.method} is not allowed here",
                    http_status=405,
                    headers={"Allow": "GET, HEAD"},
                )
            return await (native or self.docs_asset)(request)
        return await self.proxy.handle(request)

    async def _upstream_status(self) -> dict[str, dict[str, str]]:
        checks = [
            (service, address, self.upstreams.health(service, address))
            for service in self.exposed_services
            for address in self.upstreams.addresses(service)
        ]
        results = await asyncio.gather(*(check for _, _, check in checks))
        status: dict[str, dict[str, str]] = {
            service: {"(none configured)": "UNCONFIGURED"}
            for service in self.exposed_services
            if not self.upstreams.addresses(service)
        }
        for (service, address, _), result in zip(checks, results, strict=True):
            status.setdefault(service, {})[address] = result
        return status

    async def health(self, request: web.Request) -> web.Response:
        status = await self._upstream_status()
        failing = sorted(
            f"{service} at {address}: {state}"
            for service, by_address in status.items()
            for address, state in by_address.items()
            if state != "SERVING"
        )
        document = {"status": "NOT_SERVING" if failing else "SERVING", "upstreams": status, "failing": failing}
        return json_response(503 if failing else 200, document)

    async def system_info(self, request: web.Request) -> web.Response:
        # Anonymous: each service's state, never where it runs (addresses are for /health's operators).
        status = await self._upstream_status()
        services = [
            {
                "name": service,
                "status": "SERVING" if all(state == "SERVING" for state in by_address.values()) else "NOT_SERVING",
            }
            for service, by_address in status.items()
        ]
        return json_response(200, {"name": NAME, "version": VERSION, "services": services})

    async def openapi_json(self, request: web.Request) -> web.Response:
        return json_response(200, self.openapi)

    async def root(self, request: web.Request) -> web.Response:
        # A plain response, not web.HTTPFound: the edge treats raised exceptions as errors.
        return web.Response(status=302, headers={"Location": "/docs"})

    async def docs(self, request: web.Request) -> web.Response:
        return web.Response(text=DOCS_PAGE, content_type="text/html")

    async def docs_asset(self, request: web.Request) -> web.StreamResponse:
        name = request.rel_url.path.removeprefix("/docs/")
        if name not in SWAGGER_ASSETS:
            raise GatewayError(grpc.StatusCode.NOT_FOUND, f"no route for {request.rel_url.path}")
        return web.FileResponse(Path(swagger_ui_bundle.swagger_ui_path) / name)
