"""200 concurrent logins at bcrypt cost 12 through the gateway, with reads alongside.

Every answer must be a success or a fast 429 (the hashing queue is bounded):
prints the counts, the latency of each kind, and the reads' p99 during the burst.
Run: `make bench` or `python -m benchmarks.login_burst`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp

from benchmarks.harness import milliseconds, percentile, tenantry
from benchmarks.processes import cpu_seconds
from tests.stack import OWNER_PASSWORD

LOGINS = 200


async def burst(gateway: str, email: str, owner_token: str, pids: dict[str, int]) -> None:
    statuses: Counter[int] = Counter()
    latency: dict[int, list[float]] = {}
    reads: list[float] = []
    done = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=LOGINS + 8)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def login() -> None:
            started = time.perf_counter()
            async with client.post(
                f"{gateway}/api/v1/auth/login", json={"email": email, "password": OWNER_PASSWORD}
            ) as reply:
                await reply.read()
                statuses[reply.status] += 1
                latency.setdefault(reply.status, []).append(time.perf_counter() - started)

        async def read_alongside() -> None:
            while not done.is_set():
                started = time.perf_counter()
                async with client.get(
                    f"{gateway}/api/v1/tenants/me", headers={"Authorization": f"Bearer {owner_token}"}
                ) as reply:
                    await reply.read()
                reads.append(time.perf_counter() - started)

        readers = [asyncio.create_task(read_alongside()) for _ in range(4)]
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        await asyncio.gather(*(login() for _ in range(LOGINS)))
        elapsed = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        done.set()
        await asyncio.gather(*readers)

    print(f"{LOGINS} concurrent logins at cost 12 through the gateway, in {elapsed:.1f} s")
    for status, count in sorted(statuses.items()):
        times = latency[status]
        print(
            f"  HTTP {status}: {count:4d}  p50 {milliseconds(percentile(times, 0.5))}"
            f"  p99 {milliseconds(percentile(times, 0.99))}  max {milliseconds(max(times))}"
        )
    print(
        f"  reads alongside: {len(reads)}  p50 {milliseconds(percentile(reads, 0.5))}"
        f"  p99 {milliseconds(percentile(reads, 0.99))}"
    )
    # CPU time is steadier than latency on a shared machine; the gateway's includes the reads alongside.
    print("  CPU during the burst: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(cpu.items())))
    unexpected = {status: count for status, count in statuses.items() if status not in (200, 429)}
    print(f"  other statuses: {unexpected or 'none'}")


def main() -> None:
    with tenantry(
        BCRYPT_ROUNDS="12", BCRYPT_MAX_WORKERS="2", BCRYPT_MAX_QUEUE="16", GATEWAY_RATE_LIMIT_PER_MINUTE="100000"
    ) as running:
        tenant = running.stack.create_tenant("bench")
        auth = running.stack.processes["auth"].process
        pids = {"gateway": running.gateway_pid, **({"auth": auth.pid} if auth else {})}
        asyncio.run(burst(running.gateway, tenant.owner_email, tenant.owner_token, pids))


if __name__ == "__main__":
    main()
