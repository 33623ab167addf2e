"""200 concurrent logins at bcrypt cost 12 through the gateway, with reads alongside.

Every answer must be a success or a fast 429 (the hashing queue is bounded):
prints the counts, the latency of each kind, and the reads' p99 during the burst.

The burst comes from h2load (Debian's nghttp2-client): 200 clients, one new
connection and one login each, all at once, and a per-request log of status and
time. A compiled client leaves the two cores to what is measured; a Python client
spent more of them on its own 200 connections than the gateway did, and its
latencies were mostly its own. The reads alongside come from wrk.
Run: `make bench` or `python -m benchmarks.login_burst`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

from benchmarks import h2load, wrk
from benchmarks.harness import milliseconds, percentile, tenantry
from benchmarks.processes import cpu_seconds
from tests.stack import OWNER_PASSWORD

LOGINS = 200
READ_SECONDS = 8


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


def main() -> None:
    if not h2load.available() or not wrk.available():
        raise SystemExit("login_burst needs h2load and wrk: apt-get install nghttp2-client wrk (make bench does)")
    with tenantry(
        BCRYPT_ROUNDS="12", BCRYPT_MAX_WORKERS="2", BCRYPT_MAX_QUEUE="16", GATEWAY_RATE_LIMIT_PER_MINUTE="100000"
    ) as running:
        tenant = running.stack.create_tenant("bench")
        auth = running.stack.processes["auth"].process
        pids = {"gateway": running.gateway_pid, **({"auth": auth.pid} if auth else {})}
        reads_url = f"{running.gateway}/api/v1/tenants/me"
        read_load = wrk.command(reads_url, token=tenant.owner_token, connections=4, seconds=READ_SECONDS, threads=1)
        reads = subprocess.Popen(read_load, stdout=subprocess.PIPE, text=True)
        time.sleep(1)  # the reads are under way before the burst
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        login = json.dumps({"email": tenant.owner_email, "password": OWNER_PASSWORD}).encode()
        answers = h2load.http_burst(f"{running.gateway}/api/v1/auth/login", login, clients=LOGINS)
        elapsed = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        read_output, _ = reads.communicate(timeout=READ_SECONDS + 30)

    print(f"{LOGINS} concurrent logins at cost 12 through the gateway (h2load, a connection each), in {elapsed:.1f} s")
    report(answers)
    read = wrk.parse(read_output)
    print(
        f"  reads alongside (wrk c=4, {READ_SECONDS} s around the burst): {read.rate:.0f} rps"
        f"  p50 {milliseconds(read.p50)}  p99 {milliseconds(read.p99)}"
    )
    # CPU time is steadier than latency on a shared machine; the gateway's includes the reads alongside.
    print("  CPU during the burst: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(cpu.items())))


if __name__ == "__main__":
    main()
