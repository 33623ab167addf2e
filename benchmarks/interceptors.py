"""What kit's server-side steps cost per call: three interceptors, or none.

Before, each RPC went through RequestInterceptor, AccessInterceptor and
ValidationInterceptor, each an interceptor of its own; kit.server now wraps
each method's handler in kit.interceptors.pipeline.RpcPipeline once, when the
servicers are added, and runs no interceptor (an intermediate single
interceptor measured 26 µs against 33). This runs the interceptors the way grpc.aio does (each
interceptor's `intercept_service` per call, then the wrapped handler), and the
handler wrapped at registration alone, around a handler that does nothing, for
an internal call (IntrospectToken, the internal token) and an authenticated one (GetMyTenant, a
bearer token the verifier has seen), and prints µs per call (alternating, the
median of several rounds: noisy on a shared machine) and, with
`--instructions`, instructions per call counted by valgrind's callgrind
(deterministic: the difference between runs of few and more calls).
Run: `python -m benchmarks.interceptors [--instructions]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tenantry.auth.v1 import auth_service_pb2
from tenantry.tenants.v1 import tenants_service_pb2

from benchmarks import callgrind
from kit.access import access_rules
from kit.interceptors.access import INTERNAL_TOKEN_HEADER, AccessInterceptor
from kit.interceptors.pipeline import RpcPipeline
from kit.interceptors.request import RequestInterceptor
from kit.interceptors.validation import checked_request, lenient
from kit.logging import configure_logging
from kit.revocations import RevokedSessions
from kit.tokens import AccessTokenVerifier

INTROSPECT = "/tenantry.auth.v1.AuthInternalService/IntrospectToken"
GET_MY_TENANT = "/tenantry.tenants.v1.TenantService/GetMyTenant"
ISSUER, AUDIENCE, INTERNAL = "tenantry", "tenantry-api", "internal-token-for-the-benchmark"
# The chain whose RpcPipeline wraps the handler once, as kit.server does, instead of intercepting.
REGISTERED = "none (wrapped once)"
ROUNDS = 7
CALLS_PER_ROUND = 2000


class _Keys:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public = self.private.public_key()

    async def public_key(self, kid: str) -> Any | None:
        return self.public if kid == "k1" else None


class _Context:
    """What the steps use of a grpc.aio ServicerContext, on a call that succeeds."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"


class _Details:
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


Interceptors = list[grpc.aio.ServerInterceptor]
# A chain: the interceptors grpc.aio would run per call, or the one pipeline kit.server wraps handlers in.
Chain = Interceptors | list[RpcPipeline]


class FormerValidationInterceptor(grpc.aio.ServerInterceptor):
    """The request check as the third interceptor it was before RpcPipeline (unary calls)."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        behaviour = handler.unary_unary

        async def unary(request: Any, context: Any) -> Any:
            return await behaviour(checked_request(request), context)

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=lenient(handler.request_deserializer), response_serializer=None
        )


def chains() -> tuple[dict[str, Chain], dict[str, tuple[_Details, Any]]]:
    from tenantry.auth.v1 import auth_service_pb2 as auth_module
    from tenantry.tenants.v1 import tenants_service_pb2 as tenants_module

    keys = _Keys()
    revoked = RevokedSessions()
    revoked.mark_complete()
    verifier = AccessTokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, revoked=revoked)
    rules = access_rules(
        auth_module.DESCRIPTOR.services_by_name["AuthInternalService"],
        tenants_module.DESCRIPTOR.services_by_name["TenantService"],
    )
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(uuid.uuid4()),
            "sid": str(uuid.uuid4()),
            "jti": uuid.uuid4().hex,
            "typ": "access",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "tid": str(uuid.uuid4()),
            "roles": ["owner"],
            "perms": ["tenant.read"],
        },
        keys.private,
        algorithm="EdDSA",
        headers={"kid": "k1", "typ": "at+jwt"},
    )
    common = (("x-request-id", "bench-1"), ("user-agent", "grpc-python/1.85"))
    calls = {
        "IntrospectToken (internal)": (
            _Details(INTROSPECT, (*common, (INTERNAL_TOKEN_HEADER, INTERNAL))),
            auth_service_pb2.IntrospectTokenRequest(token=token),
        ),
        "GetMyTenant (bearer)": (
            _Details(GET_MY_TENANT, (*common, ("authorization", f"Bearer {token}"))),
            tenants_service_pb2.GetMyTenantRequest(),
        ),
    }

    def steps() -> tuple[RequestInterceptor, AccessInterceptor]:
        return RequestInterceptor(gateway_token=""), AccessInterceptor(rules, verifier, INTERNAL)

    three: Interceptors = [*steps(), FormerValidationInterceptor()]
    return {
        "three interceptors": three,
        REGISTERED: [RpcPipeline(*steps())],
    }, calls


async def _nothing(request: Any, context: Any) -> Any:
    return request


def _handler(_details: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(_nothing, request_deserializer=lambda raw: raw)


async def _run_interceptors(interceptors: Iterator[grpc.aio.ServerInterceptor], details: Any) -> Any:
    """As grpc.aio's server does (its _run_interceptor): each interceptor with the rest as its continuation."""
    interceptor = next(interceptors, None)
    if interceptor is None:
        return _handler(details)

    def continuation(next_details: Any) -> Awaitable[Any]:
        return _run_interceptors(interceptors, next_details)

    return await interceptor.intercept_service(continuation, details)


async def _calls(chain: str, interceptors: Chain, details: _Details, request: Any, count: int) -> None:
    context = _Context(details.invocation_metadata)
    if chain == REGISTERED:
        (pipeline,) = interceptors
        assert isinstance(pipeline, RpcPipeline)
        wrapped = pipeline.wrap_method(_handler(details), details.method)
        for _ in range(count):
            await wrapped.unary_unary(request, context)
        return
    for _ in range(count):
        handler = await _run_interceptors(iter(interceptors), details)
        await handler.unary_unary(request, context)


def _timed(run: Callable[[], Coroutine[Any, Any, None]]) -> float:
    started = time.perf_counter_ns()
    asyncio.run(run())
    return (time.perf_counter_ns() - started) / CALLS_PER_ROUND / 1000


def microseconds_per_call() -> dict[tuple[str, str], float]:
    chain_of, calls = chains()
    rounds: dict[tuple[str, str], list[float]] = {}
    for _ in range(ROUNDS):
        for call, (details, request) in calls.items():
            for name, interceptors in chain_of.items():
                spent = _timed(lambda: _calls(name, interceptors, details, request, CALLS_PER_ROUND))  # noqa: B023
                rounds.setdefault((call, name), []).append(spent)
    return {key: statistics.median(values) for key, values in rounds.items()}


def instructions(chain: str, call: str, count: int) -> int:
    return callgrind.instructions("benchmarks.interceptors", "--subject", chain, call, str(count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    parser.add_argument("--subject", nargs=3, help=argparse.SUPPRESS)  # callgrind's subject: chain, call, count
    arguments = parser.parse_args()
    # The log line per call is built as in a service, and dropped: its cost is part of the figure.
    configure_logging("bench", log_format="json")
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # type: ignore[attr-defined]  # noqa: SIM115
    if arguments.subject is not None:
        chain, call, count = arguments.subject
        chain_of, calls = chains()
        details, request = calls[call]
        asyncio.run(_calls(chain, chain_of[chain], details, request, int(count)))
        return
    for (call, chain), spent in microseconds_per_call().items():
        print(f"{call:<28} {chain:<20} {spent:6.1f} µs per call")
    if arguments.instructions:
        if not callgrind.available():
            print("valgrind is not installed: no instruction count")
            return
        _, calls = chains()
        for call in calls:
            for chain in ("three interceptors", REGISTERED):
                per_call = (instructions(chain, call, 1 + 200) - instructions(chain, call, 1)) / 200
                print(f"{call:<28} {chain:<20} {per_call / 1000:6.1f} k instructions per call")


if __name__ == "__main__":
    main()
