"""HTTP load with wrk (Debian's package), parsed into requests per second and latency percentiles."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class HttpResult:
    rate: float
    p50: float
    p99: float
    errors: int  # non-2xx answers
    socket_errors: int  # refused, reset or timed out (wrk's timeout: 2 s)


def available() -> bool:
    return shutil.which("wrk") is not None


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def command(url: str, *, token: str, connections: int, seconds: float, threads: int = 2) -> list[str]:
    """Authenticated GETs of `url` for `seconds`; its output is read by `parse`."""
    assert url.startswith("http://127.0.0.1:"), "benchmarks target loopback only"
    return ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "-H", f"Authorization: Bearer {token}", url]  # fmt: skip


def run(url: str, *, token: str, connections: int, seconds: float, threads: int = 2) -> HttpResult:
    argv = command(url, token=token, connections=connections, seconds=seconds, threads=threads)
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    return parse(output)


def parse(output: str) -> HttpResult:
    """wrk's --latency report, read."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    percentiles = dict(re.findall(r"^\s*(\d+)(?:\.0+)?%\s+([\d.]+(?:us|ms|s|m))\s*$", output, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failed = int(errors.group(1)) if errors else 0
    broken = sum(int(value) for value in socket_errors.groups()) if socket_errors else 0
    # A run that timed out entirely has no distribution: NaN, not a crash.
    p50, p99 = (_seconds(percentiles[key]) if key in percentiles else float("nan") for key in ("50", "99"))
    return HttpResult(rate, p50, p99, failed, broken)
