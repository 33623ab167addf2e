"""200 concurrent logins at bcrypt cost 12 through the gateway, with reads alongside.

Every answer must be a success or a fast 429 (the hashing queue is bounded):
prints the counts and the latency of each kind, and the reads' latency before and
during the burst.

The burst comes from h2load (Debian's nghttp2-client): 200 clients, one new
connection and one login each, all at once, and a per-request log of status and
time. A compiled client leaves the two cores to what is measured; a Python client
spent more of them on its own 200 connections than the gateway did, and its
latencies were mostly its own. The reads are h2load's too, at a steady 200 a
second (open loop), first alone and then through the burst: a closed loop of
readers would saturate the gateway by itself and measure its own queue.
Run: `make bench` or `python -m benchmarks.login_burst`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from benchmarks import h2load
from benchmarks.harness import milliseconds, percentile, tenantry
from benchmarks.logins import auth_default
from benchmarks.processes import cpu_seconds
from tests.stack import OWNER_PASSWORD

LOGINS = 200
READERS, READS_PER_READER = 4, 50  # 200 reads a second
READ_SECONDS = 8
BASELINE_SECONDS = 3


def report(answers: list[h2load.Answer], expected: int = LOGINS) -> None:
    statuses = Counter(answer.status for answer in answers)
    for status, count in sorted(statuses.items()):
        times = [answer.seconds for answer in answers if answer.status == status]
        print(
            f"  HTTP {status}: {count:4d}  p50 {milliseconds(percentile(times, 0.5))}"
            f"  p99 {milliseconds(percentile(times, 0.99))}  max {milliseconds(max(times))}"
        )
    unexpected = {status: count for status, count in statuses.items() if status not in (200, 429)}
    missing = expected - len(answers)
    print(f"  other statuses: {unexpected or 'none'}" + (f"; {missing} without an answer" if missing else ""))


def describe_reads(label: str, answers: list[h2load.Answer]) -> str:
    times = [answer.seconds for answer in answers if answer.status == 200]
    failed = len(answers) - len(times)
    return (
        f"  reads {label}: {len(times)}  p50 {milliseconds(percentile(times, 0.5))}"
        f"  p99 {milliseconds(percentile(times, 0.99))}" + (f"  ({failed} not 200)" if failed else "")
    )


def main() -> None:
    if not h2load.available():
        raise SystemExit("login_burst needs h2load: apt-get install nghttp2-client (make bench does)")
    # Cost 12 and otherwise the defaults: 2 hashing threads, 30 waiting, 32 in flight through the gateway
    # (the suite's stack that the harness builds on admits more, for its own bursts).
    threads, queue = auth_default("bcrypt_max_workers"), auth_default("bcrypt_max_queue")
    with tenantry(BCRYPT_ROUNDS="12", BCRYPT_MAX_WORKERS=str(threads), BCRYPT_MAX_QUEUE=str(queue)) as running:
        tenant = running.stack.create_tenant("bench")
        auth = running.stack.processes["auth"].process
        pids = {"gateway": running.gateway_pid, **({"auth": auth.pid} if auth else {})}

        def reads(seconds: int) -> list[h2load.Answer]:
            return h2load.paced_gets(
                f"{running.gateway}/api/v1/tenants/me",
                headers={"Authorization": f"Bearer {tenant.owner_token}"},
                clients=READERS,
                per_client_rps=READS_PER_READER,
                seconds=seconds,
            )

        alone = reads(BASELINE_SECONDS)
        with ThreadPoolExecutor(max_workers=1) as pool:
            alongside = pool.submit(reads, READ_SECONDS)
            time.sleep(1)  # the reads are under way before the burst
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.perf_counter()
            login = json.dumps({"email": tenant.owner_email, "password": OWNER_PASSWORD}).encode()
            answers = h2load.http_burst(f"{running.gateway}/api/v1/auth/login", login, clients=LOGINS)
            elapsed = time.perf_counter() - started
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            during = alongside.result()

    print(f"{LOGINS} concurrent logins at cost 12 through the gateway (h2load, a connection each), in {elapsed:.1f} s")
    report(answers)
    rate = READERS * READS_PER_READER
    print(describe_reads(f"alone ({rate}/s, {BASELINE_SECONDS} s)", alone))
    print(describe_reads(f"through the burst ({rate}/s, {READ_SECONDS} s)", during))
    # CPU time is steadier than latency on a shared machine; the gateway's includes the reads alongside.
    print("  CPU during the burst: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(cpu.items())))


if __name__ == "__main__":
    main()
