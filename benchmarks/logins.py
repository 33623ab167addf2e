"""Sustained logins at bcrypt cost 12 against this machine's bcrypt bound.

The bound: BCRYPT_MAX_WORKERS threads (auth's default) checking cost-12 hashes in
this process, with nothing else running; no login can be faster than its one
check. Tenantry: CALLERS gRPC callers logging in one after another for SECONDS
against auth on its defaults. Prints both rates and the ratio (the goal: at
least 90% of the bound).

Run: `make bench` or `python -m benchmarks.logins`. Loopback only; stops by itself.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import bcrypt
import grpc

from benchmarks.harness import tenantry
from benchmarks.processes import cpu_seconds
from services.auth.settings import AuthSettings
from tests.stack import OWNER_PASSWORD, Stack

ROUNDS = 12
# More callers than hashing threads, so a thread never waits for work; fewer than the queue admits.
CALLERS = 8
SECONDS = 15.0
BOUND_SECONDS = 8.0


@dataclass(frozen=True)
class Rate:
    done: int
    failed: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


def auth_default(setting: str) -> int:
    return int(AuthSettings.model_fields[setting].default)


def bcrypt_bound(rounds: int, threads: int, seconds: float) -> Rate:
    """Password checks per second on `threads` threads (bcrypt releases the GIL while it hashes)."""
    password = b"a-password-of-some-length"
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds))
    done = [0] * threads
    deadline = time.perf_counter() + seconds

    def check(index: int) -> None:
        while time.perf_counter() < deadline:
            assert bcrypt.checkpw(password, hashed)
            done[index] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(check, range(threads)))
    return Rate(sum(done), 0, time.perf_counter() - started)


def login_rate(stack: Stack, email: str, password: str, *, callers: int, seconds: float) -> Rate:
    """Logins per second from `callers` threads, each logging in again as soon as it is answered."""
    lock = threading.Lock()
    counts = {"done": 0, "failed": 0}
    deadline = time.perf_counter() + seconds

    def caller() -> None:
        while time.perf_counter() < deadline:
            try:
                stack.login(email, password)
                outcome = "done"
            except grpc.RpcError:
                outcome = "failed"
            with lock:
                counts[outcome] += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        for future in [pool.submit(caller) for _ in range(callers)]:
            future.result()
    return Rate(counts["done"], counts["failed"], time.perf_counter() - started)


def main() -> None:
    threads, queue = auth_default("bcrypt_max_workers"), auth_default("bcrypt_max_queue")
    with tenantry(BCRYPT_ROUNDS=str(ROUNDS), BCRYPT_MAX_WORKERS=str(threads), BCRYPT_MAX_QUEUE=str(queue)) as running:
        tenant = running.stack.create_tenant("bench")
        pids = {name: process.process.pid for name, process in running.stack.processes.items() if process.process}
        pids["gateway"] = running.gateway_pid
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        logins = login_rate(running.stack, tenant.owner_email, OWNER_PASSWORD, callers=CALLERS, seconds=SECONDS)
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    # After the stack has stopped: the bound has the cores to itself.
    bound = bcrypt_bound(ROUNDS, threads, BOUND_SECONDS)
    print(f"Logins at cost {ROUNDS}, {CALLERS} gRPC callers, {SECONDS:.0f} s, auth on its defaults ({threads} threads)")
    print(f"  Tenantry: {logins.per_second:.2f} logins/s ({logins.done} logins, {logins.failed} failed)")
    print(f"  bcrypt bound: {bound.per_second:.2f} checks/s on {threads} threads, nothing else running")
    print(f"  ratio: {logins.per_second / bound.per_second:.0%} of the bound")
    print(
        "  CPU per login: "
        + ", ".join(f"{name} {seconds / max(1, logins.done) * 1000:.0f} ms" for name, seconds in sorted(cpu.items()))
        + f" (a check alone: {2 / bound.per_second * 1000:.0f} ms of a core)"
    )


if __name__ == "__main__":
    main()
