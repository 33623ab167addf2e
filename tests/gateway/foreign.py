"""Real servers for a contract that is not Tenantry's: a recording upstream for
any descriptor set, an auth upstream that serves only GetJwks, an HTTP JWKS
document, and the access tokens they vouch for."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from tenantry.auth.v1 import auth_pb2, auth_service_pb2

from devtools.descriptor_set import build

PROTOS = Path(__file__).resolve().parent / "protos"
TICKETS_PROTO = "acme/tickets/v1/tickets.proto"
CONF_PROTO = "conf/v1/conf.proto"
ISSUER, AUDIENCE = "tenantry", "tenantry-api"
AUTH_SERVICE = "tenantry.auth.v1.AuthService"


def build_set(target: Path, *protos: str) -> Path:
    """A descriptor set as a team would build it: with its imports and comments."""
    return build(target, [PROTOS], protos)


@dataclass
class RecordedCall:
    method: str  # "/package.Service/Method"
    request: dict[str, Any]
    metadata: dict[str, str]


@dataclass
class RecordingUpstream:
    """Serves every method of a descriptor set: answers with the request's fields
    that the response also has, and records each call with its metadata."""

    address: str
    server: grpc.Server
    calls: list[RecordedCall] = field(default_factory=list)

    def last(self) -> RecordedCall:
        return self.calls[-1]


@contextmanager
def recording_upstream(descriptor_set: Path) -> Iterator[RecordingUpstream]:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    upstream = RecordingUpstream("", server)
    for file in files.file:
        for service_proto in file.service:
            service = pool.FindServiceByName(f"{file.package}.{service_proto.name}")
            handlers = {method.name: _recording_handler(upstream, method) for method in service.methods}
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    upstream.address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        yield upstream
    finally:
        server.stop(0)


def _recording_handler(upstream: RecordingUpstream, method: Any) -> grpc.RpcMethodHandler:
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"

    def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
        fields = json_format.MessageToDict(request, preserving_proto_field_name=True)
        upstream.calls.append(RecordedCall(path, fields, dict(context.invocation_metadata())))
        return json_format.ParseDict(fields, response_class(), ignore_unknown_fields=True)

    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=request_class.FromString, response_serializer=response_class.SerializeToString
    )


class TokenIssuer:
    """Signs access tokens the way auth does (EdDSA, at+jwt), with a key of its own."""

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.private = Ed25519PrivateKey.generate()

    def jwk(self) -> dict[str, str]:
        public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(public).rstrip(b"=").decode()
        return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def token(self, *, lifetime: float = 300, kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()),
            "jti": uuid.uuid4().hex, "typ": "access", "iat": now, "nbf": now, "exp": now + lifetime,
            "tid": str(uuid.uuid4()), "roles": ["member"], "perms": [],
        } | claims  # fmt: skip
        headers = {"kid": kid or self.kid, "typ": "at+jwt"}
        return jwt.encode(body, self.private, algorithm="EdDSA", headers=headers)


@contextmanager
def jwks_auth_upstream(issuer: TokenIssuer) -> Iterator[tuple[str, list[float]]]:
    """An auth upstream whose GetJwks serves the issuer's key; its address and its fetches."""
    fetches: list[float] = []

    def get_jwks(request: Any, context: grpc.ServicerContext) -> auth_service_pb2.Jwks:
        fetches.append(time.monotonic())
        return auth_service_pb2.Jwks(keys=[auth_pb2.Jwk(**issuer.jwk())])

    handler = grpc.unary_unary_rpc_method_handler(
        get_jwks,
        request_deserializer=auth_service_pb2.GetJwksRequest.FromString,
        response_serializer=auth_service_pb2.Jwks.SerializeToString,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # Auth's service name, serving GetJwks alone: the gateway reaches it with the generated stubs' path.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(AUTH_SERVICE, {"GetJwks": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", fetches
    finally:
        server.stop(0)


@contextmanager
def jwks_http_server(issuer: TokenIssuer, status: int = 200) -> Iterator[tuple[str, list[float]]]:
    """An HTTP JWKS document of the issuer's key (or an error status); its URL and its fetches."""
    fetches: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(time.monotonic())
            body = json.dumps({"keys": [issuer.jwk()]}).encode()
            self.send_response(status if self.path == "/.well-known/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", fetches
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
