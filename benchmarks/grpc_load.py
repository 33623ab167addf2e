"""A multi-process gRPC load client: each process a grpc.aio channel with
concurrent callers sending the same serialized request for a fixed time.

Requests go out as bytes and answers come back as bytes, so the client spends
nothing on protobuf and measures the server. Loopback targets only.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass

import grpc

from benchmarks.harness import percentile


@dataclass(frozen=True)
class Load:
    target: str
    method: str
    request: bytes
    metadata: tuple[tuple[str, str], ...] = ()
    processes: int = 2
    concurrency: int = 64  # in all, split between the processes
    seconds: float = 10.0


@dataclass(frozen=True)
class Result:
    calls: int
    failures: int
    seconds: float
    p50: float
    p99: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


async def _drive(load: Load, callers: int) -> tuple[int, int, list[float]]:
    assert load.target.startswith("127.0.0.1:"), "benchmarks target loopback only"
    latencies: list[float] = []
    failures = 0
    async with grpc.aio.insecure_channel(load.target) as channel:
        call = channel.unary_unary(load.method)
        await channel.channel_ready()
        deadline = time.perf_counter() + load.seconds

        async def caller() -> None:
            nonlocal failures
            while (started := time.perf_counter()) < deadline:
                try:
                    await call(load.request, metadata=load.metadata, timeout=10)
                except grpc.aio.AioRpcError:
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(callers)))
    return len(latencies), failures, latencies[:: max(1, len(latencies) // 20000)]


def _process(load: Load, callers: int) -> tuple[int, int, list[float]]:
    return asyncio.run(_drive(load, callers))


def run(load: Load) -> Result:
    """Drives load from load.processes fresh processes; all must finish."""
    shares = [
        load.concurrency // load.processes + (i < load.concurrency % load.processes) for i in range(load.processes)
    ]
    context = multiprocessing.get_context("spawn")  # grpc's threads do not survive a fork
    with context.Pool(load.processes) as pool:
        started = time.perf_counter()
        outcomes = pool.starmap(_process, [(load, share) for share in shares if share])
        elapsed = min(time.perf_counter() - started, load.seconds)
    latencies = sorted(value for _, _, sample in outcomes for value in sample)
    return Result(
        calls=sum(calls for calls, _, _ in outcomes),
        failures=sum(failed for _, failed, _ in outcomes),
        seconds=elapsed,
        p50=percentile(latencies, 0.5),
        p99=percentile(latencies, 0.99),
    )
