"""The request check's cost on the heaviest request there is: a 500-event `AppendAuditEvents` batch.

`ValidationInterceptor` walks every request before its handler runs; on ingest
that is 500 events of 10 strings, a Timestamp and a Struct each. This prints
the walk's cost per batch in µs (the median of several timed rounds: noisy on a
shared machine) and, with `--instructions`, the instructions it executes per
batch counted by valgrind's callgrind (deterministic: the difference between a
run checking no batch and one checking a few, so start-up cancels out).
Run: `python -m benchmarks.validation [--instructions]`.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks import callgrind
from benchmarks.audit_ingest import batch_of_events
from kit.interceptors.validation import check_request

ROUNDS = 7
BATCHES_PER_ROUND = 20
COUNTED_BATCHES = 4


def microseconds_per_batch() -> float:
    batch = batch_of_events(0, 0)
    check_request(batch)  # the per-type plans are built once, outside the timing
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        for _ in range(BATCHES_PER_ROUND):
            check_request(batch)
        rounds.append((time.perf_counter_ns() - started) / BATCHES_PER_ROUND / 1000)
    return statistics.median(rounds)


def check_batches(count: int) -> None:
    batch = batch_of_events(0, 0)
    for _ in range(count):
        check_request(batch)


def instructions(batches: int) -> int:
    """Instructions valgrind counts for a whole process that checks `batches` batches."""
    return callgrind.instructions("benchmarks.validation", "--check", str(batches))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    parser.add_argument("--check", type=int, metavar="N", help=argparse.SUPPRESS)  # callgrind's subject
    arguments = parser.parse_args()
    if arguments.check is not None:
        check_batches(arguments.check)
        return
    print(f"request check, 500-event AppendAuditEventsRequest: {microseconds_per_batch():,.0f} µs per batch")
    if arguments.instructions:
        if not callgrind.available():
            print("valgrind is not installed: no instruction count")
            return
        # One batch is always checked, so that both runs build the plans and import alike.
        per_batch = (instructions(1 + COUNTED_BATCHES) - instructions(1)) / COUNTED_BATCHES
        print(f"request check, 500-event AppendAuditEventsRequest: {per_batch / 1e6:,.2f} M instructions per batch")


if __name__ == "__main__":
    main()
