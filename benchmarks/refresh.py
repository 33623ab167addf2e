"""Refresh with rotation over gRPC: 64 chains, each refreshing the token the last refresh returned.

Two client processes of 32 chains each, so that the client's own Python is
not what is measured, against a throwaway Tenantry on loopback. Both start at
one agreed instant, once connected, and count the refreshes answered within
the window: starting a process (a second or more) is not a refresh.
Run: `make bench` or `python -m benchmarks.refresh`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import grpc
from tenantry.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from benchmarks.harness import milliseconds, percentile, tenantry
from benchmarks.round_trips import refresh_round_trips
from tests.stack import OWNER_PASSWORD

CHAINS = 64
PROCESSES = 2
SECONDS = 10.0


async def drive_chains(
    address: str, tokens: list[str], seconds: float, start_at: float = 0.0
) -> tuple[int, list[float], int]:
    """Refreshes each chain in turn from start_at (time.time(): one clock for every process) for
    seconds: (refreshes answered within the window, their latencies, failures)."""
    latencies: list[float] = []
    failures = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = auth_service_pb2_grpc.AuthServiceStub(channel)
        await channel.channel_ready()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.perf_counter() + seconds

        async def chain(token: str) -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    reply = await stub.Refresh(auth_service_pb2.RefreshRequest(refresh_token=token), timeout=10)
                except grpc.aio.AioRpcError:
                    failures += 1
                    return
                answered = time.perf_counter()
                if answered <= deadline:
                    latencies.append(answered - started)
                token = reply.refresh_token

        await asyncio.gather(*(chain(token) for token in tokens))
    return len(latencies), latencies, failures


def client_process(
    address: str, tokens: list[str], seconds: float, start_at: float = 0.0
) -> tuple[int, list[float], int]:
    return asyncio.run(drive_chains(address, tokens, seconds, start_at))


# Time for the client processes to start (spawn, import grpc, connect) before the agreed instant.
START_SECONDS = 5.0


def main() -> None:
    with tenantry(BCRYPT_ROUNDS="4", GATEWAY_RATE_LIMIT_PER_MINUTE="100000") as running:
        tenant = running.stack.create_tenant("bench")
        tokens = [running.stack.login(tenant.owner_email, OWNER_PASSWORD).refresh_token for _ in range(CHAINS)]
        address = running.stack.processes["auth"].address
        # A short warm-up fills every pooled connection's statement cache.
        client_process(address, tokens[:8], 0.0)
        share = CHAINS // PROCESSES
        with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
            start_at = time.time() + START_SECONDS
            results = pool.starmap(
                client_process,
                [(address, tokens[i * share : (i + 1) * share], SECONDS, start_at) for i in range(PROCESSES)],
            )
        fresh = running.stack.login(tenant.owner_email, OWNER_PASSWORD).refresh_token
        counted, _ = asyncio.run(refresh_round_trips(running.stack.database_url, fresh))
    refreshes = sum(result[0] for result in results)
    latencies = [value for result in results for value in result[1]]
    failures = sum(result[2] for result in results)
    print(f"refresh with rotation over gRPC, {CHAINS} chains, {PROCESSES} client processes")
    print(
        f"  {refreshes} refreshes in {SECONDS:.1f} s = {refreshes / SECONDS:,.0f}/s (goal 400)"
        f"  p50 {milliseconds(percentile(latencies, 0.5))}  p99 {milliseconds(percentile(latencies, 0.99))}"
        f"  failures {failures}"
    )
    print(f"  PostgreSQL round trips per refresh: {len(counted)} ({', '.join(counted)}); 11 before")


if __name__ == "__main__":
    main()
