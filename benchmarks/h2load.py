"""gRPC load with h2load (Debian's nghttp2-client), a client in C, like ghz.

The Python load client (benchmarks.grpc_load) runs on the same two cores as the
server it drives, so it understates the server; h2load costs far less per
call. It knows HTTP/2, not gRPC: each call is a POST of one length-prefixed
gRPC message (content-type application/grpc, te: trailers), and h2load counts
any HTTP 200 as a success, while a gRPC error is a 200 too, with the error in
the trailers. So a call counts here only when its answer carried the message
expected: one real gRPC call first (its grpc-status must be OK) gives the
answer's bytes, and the DATA bytes h2load received must hold that answer once
per call. An error answer (trailers only) carries no message and counts as a
failure; the driven methods answer the same request with the same message.

Loopback targets only; stops by itself.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from benchmarks.grpc_load import Load, Result
from benchmarks.harness import percentile

_FINISHED = re.compile(r"finished in ([\d.]+)s, ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed")
_STATUS_CODES = re.compile(r"status codes: (\d+) 2xx")
_DATA_BYTES = re.compile(r"traffic: .*?\((\d+)\) data")


def available() -> bool:
    return shutil.which("h2load") is not None


def grpc_message(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed (0), its length (4 bytes, big-endian), the bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def expected_answer(load: Load) -> bytes:
    """The answer's bytes from one real call; grpc.RpcError unless its grpc-status is OK."""
    with grpc.insecure_channel(load.target) as channel:
        call = channel.unary_unary(load.method)
        answer: bytes = call(load.request, metadata=load.metadata, timeout=10)
    return answer


def answered(output: str, answer_size: int, concurrency: int) -> tuple[int, int]:
    """(calls answered with the expected message, failed calls), from h2load's summary.

    Calls still in flight when the time is up may have received their message but
    not their trailers: up to one message per connection beyond `done` is theirs."""
    requests = _REQUESTS.search(output)
    ok_status = _STATUS_CODES.search(output)
    data = _DATA_BYTES.search(output)
    if requests is None or ok_status is None or data is None:
        raise RuntimeError(f"h2load's summary was not understood: {output[-800:]}")
    done, status_2xx = int(requests.group(2)), int(ok_status.group(1))
    messages, leftover = divmod(int(data.group(1)), answer_size)
    if leftover or messages > done + concurrency:
        # Answers of another size: not the call measured (an error, or another message).
        return 0, done
    calls = min(messages, status_2xx)
    return calls, done - calls


@dataclass(frozen=True)
class Answer:
    status: int  # HTTP status; -1 when none came
    seconds: float  # from sending the request to the end of the answer


def logged_answers(log: Path) -> list[Answer]:
    """h2load's --log-file: start (µs since the epoch), HTTP status, µs to the end of the answer."""
    answers = []
    for line in log.read_text().splitlines():
        columns = line.split("\t")
        if len(columns) >= 3:
            answers.append(Answer(int(columns[1]), int(columns[2]) / 1e6))
    return answers


def _h2load(
    url: str,
    arguments: list[str],
    *,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    timeout: float,
) -> tuple[str, list[Answer]]:
    """h2load's summary and its per-request log, for url (loopback only) with these arguments."""
    assert url.startswith("http://127.0.0.1:"), "benchmarks target loopback only"
    with tempfile.TemporaryDirectory(prefix="tnt-h2load-") as folder:
        request, log = Path(folder) / "body", Path(folder) / "answers.log"
        if body is not None:
            request.write_bytes(body)
            arguments = [*arguments, "-d", str(request)]
        output = subprocess.run(
            ["h2load", *arguments, *(argument for key, value in headers for argument in ("-H", f"{key}: {value}")),
             f"--log-file={log}", url],
            capture_output=True, text=True, check=True, timeout=timeout,
        ).stdout  # fmt: skip
        return output, logged_answers(log)


def http_burst(url: str, body: bytes, *, clients: int, content_type: str = "application/json") -> list[Answer]:
    """`clients` POSTs of body at once, each on a new HTTP/1.1 connection of its own, and their answers."""
    arguments = ["--h1", f"-n{clients}", f"-c{clients}", f"-t{min(2, clients)}"]
    return _h2load(url, arguments, headers=[("content-type", content_type)], body=body, timeout=120)[1]


def paced_gets(url: str, *, headers: dict[str, str], clients: int, per_client_rps: float, seconds: int) -> list[Answer]:
    """GETs at a steady rate (clients x per_client_rps a second, open loop: a slow answer
    does not slow the next request) on HTTP/1.1 keep-alive connections, and their answers."""
    arguments = ["--h1", f"-c{clients}", f"-t{min(2, clients)}", f"--rps={per_client_rps}", f"-D{seconds}"]
    return _h2load(url, arguments, headers=list(headers.items()), timeout=seconds + 60)[1]


def run(load: Load) -> Result:
    """h2load with load.concurrency connections (one call at a time on each) and
    load.processes threads, for load.seconds (whole seconds, at least one)."""
    assert load.target.startswith("127.0.0.1:"), "benchmarks target loopback only"
    answer_size = len(grpc_message(expected_answer(load)))
    seconds = max(1, round(load.seconds))
    headers = [("content-type", "application/grpc"), ("te", "trailers"), *load.metadata]
    arguments = [f"-c{load.concurrency}", "-m1", f"-t{min(load.processes, load.concurrency)}", f"-D{seconds}"]
    output, answers = _h2load(
        f"http://{load.target}{load.method}",
        arguments,
        headers=headers,
        body=grpc_message(load.request),
        timeout=seconds + 30,
    )
    timed = sorted(answer.seconds for answer in answers if answer.status == 200)
    finished = _FINISHED.search(output)
    calls, failures = answered(output, answer_size, load.concurrency)
    elapsed = float(finished.group(1)) if finished else float(seconds)
    return Result(
        calls=calls,
        failures=failures,
        seconds=elapsed,
        p50=percentile(timed, 0.5),
        p99=percentile(timed, 0.99),
    )
