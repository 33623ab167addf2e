"""API-key reads against JWT reads: what exchanging keys at the edge costs.

On a throwaway Tenantry (three services and the gateway): wrk drives
`GET /api/v1/tenants/me` through the gateway with an owner's access token and
with an API key (`Authorization: Bearer tnt_...`) in turn, ROUNDS times each
(medians); a gRPC client drives GetMyTenant directly with each. Then
ExchangeApiKey alone, which is what checking the key with auth on every
request would cost, and the exchanges the key reads made (from the key's
last use, which each exchange moves: none after the first).

Run: `python -m benchmarks.api_keys` (BENCH_SECONDS, BENCH_ROUNDS shorten it).
The figures are as noisy as the machine is shared; compare the two columns of
one run, not runs with each other.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass

from tenantry.auth.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc
from tenantry.tenants.v1 import tenants_service_pb2

from benchmarks import grpc_load, wrk
from benchmarks.harness import milliseconds, tenantry
from benchmarks.reads import GET_MY_TENANT, Row, ratio, rps
from kit.api_keys import ApiKeyTokens, ExchangedToken, metadata_api_key
from tests.stack import Stack, bearer

EXCHANGE = "/tenantry.auth.v1.ApiKeyService/ExchangeApiKey"


@dataclass(frozen=True)
class Settings:
    seconds: float = float(os.environ.get("BENCH_SECONDS", "5"))
    rounds: int = int(os.environ.get("BENCH_ROUNDS", "3"))
    connections: int = 16


def new_key(stack: Stack, owner_token: str) -> api_keys_service_pb2.CreateApiKeyResponse:
    stub = api_keys_service_pb2_grpc.ApiKeyServiceStub(stack.channels["auth"])
    return stub.CreateApiKey(
        api_keys_service_pb2.CreateApiKeyRequest(name="bench", permissions=["tenant.read"]),
        metadata=bearer(owner_token),
        timeout=10,
    )


def last_used(stack: Stack, key_id: str) -> object:
    return stack.sql("SELECT last_used_at FROM auth.api_keys WHERE id = %s", (key_id,))[0][0]


def http_rows(url: str, token: str, key: str, settings: Settings) -> list[Row]:
    jwt_runs, key_runs = [], []
    for _ in range(settings.rounds):
        jwt_runs.append(wrk.run(url, token=token, connections=settings.connections, seconds=settings.seconds))
        key_runs.append(wrk.run(url, token=key, connections=settings.connections, seconds=settings.seconds))

    def figure(runs: list[wrk.HttpResult]) -> tuple[float, str]:
        rate = statistics.median(r.rate for r in runs)
        failed = sum(r.errors + r.socket_errors for r in runs)
        p99 = statistics.median(r.p99 for r in runs)
        return rate, f"{rps(rate)}, p99 {milliseconds(p99)}" + (f", {failed} failed" if failed else "")

    key_rate, key_text = figure(key_runs)
    jwt_rate, jwt_text = figure(jwt_runs)
    return [
        Row(
            f"GET /api/v1/tenants/me via gateway, wrk c={settings.connections}",
            key_text,
            jwt_text,
            ratio(key_rate, jwt_rate),
        )
    ]


def grpc_rows(stack: Stack, token: str, key: str, settings: Settings) -> list[Row]:
    def drive(target: str, method: str, request: bytes, metadata: tuple[tuple[str, str], ...]) -> grpc_load.Result:
        return grpc_load.run(grpc_load.Load(target, method, request, metadata, processes=1, seconds=settings.seconds))

    request = tenants_service_pb2.GetMyTenantRequest().SerializeToString()
    tenants = stack.processes["tenants"].address
    with_key = drive(tenants, GET_MY_TENANT, request, (("x-api-key", key),))
    with_token = drive(tenants, GET_MY_TENANT, request, bearer(token))
    exchanged = drive(
        stack.processes["auth"].address,
        EXCHANGE,
        api_keys_service_pb2.ExchangeApiKeyRequest(api_key=key).SerializeToString(),
        (),
    )

    def figure(result: grpc_load.Result) -> str:
        failed = f", {result.failures} failed" if result.failures else ""
        return f"{rps(result.rate)}, p99 {milliseconds(result.p99)}{failed}"

    return [
        Row(
            "gRPC GetMyTenant direct, c=64 (x-api-key vs authorization)",
            figure(with_key),
            figure(with_token),
            ratio(with_key.rate, with_token.rate),
        ),
        Row("gRPC ExchangeApiKey alone, c=64 (a check with auth per request)", figure(exchanged), "", ""),
    ]


def cached_key_overhead(calls: int = 100_000) -> Row:
    """What a remembered key adds to a request, in process: finding the key in the
    metadata, checking its form, hashing it and finding its token (no I/O, so this
    figure is far steadier than the load runs above)."""
    key = "tnt_abcdefgh_" + "a" * 52
    metadata = {"x-api-key": key, "x-request-id": "bench"}

    async def exchange(_: str) -> ExchangedToken:
        return ExchangedToken("token", 300.0)

    async def measure() -> float:
        tokens = ApiKeyTokens(exchange)
        await tokens.access_token(key)
        started = time.perf_counter()
        for _ in range(calls):
            presented = metadata_api_key(metadata)
            assert presented is not None
            await tokens.access_token(presented)
        return (time.perf_counter() - started) / calls

    seconds = asyncio.run(measure())
    return Row("Added per request by a remembered key, in process", f"{seconds * 1e6:.1f} µs", "", "")


def run(settings: Settings) -> list[Row]:
    with tenantry(GATEWAY_RATE_LIMIT_PER_MINUTE="100000") as running:
        stack = running.stack
        tenant = stack.create_tenant("bench-keys")
        created = new_key(stack, tenant.owner_token)
        rows: list[Row] = []
        url = f"{running.gateway}/api/v1/tenants/me"
        if wrk.available():
            # One read exchanges the key at the gateway (and the direct gRPC reads at the tenants service).
            wrk.run(url, token=created.secret, connections=1, seconds=1)
            before = last_used(stack, created.api_key.id)
            rows += http_rows(url, tenant.owner_token, created.secret, settings)
            unchanged = last_used(stack, created.api_key.id) == before
            rows.append(
                Row(
                    "Calls to auth by the gateway during the API-key runs",
                    "0 (the key's last use did not move)" if unchanged else "some (the key's last use moved)",
                    "",
                    "",
                )
            )
        else:
            print("wrk is not installed (apt-get install wrk): HTTP figures skipped", file=sys.stderr)
        rows += grpc_rows(stack, tenant.owner_token, created.secret, settings)
    return [*rows, cached_key_overhead()]


def main() -> None:
    print("| Figure | API key | Access token | Ratio |")
    print("|---|---|---|---|")
    for row in run(Settings()):
        print(f"| {row.figure} | {row.ours} | {row.theirs} | {row.ratio} |")


if __name__ == "__main__":
    main()
