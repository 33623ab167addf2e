"""Instructions a Python process executes, counted by valgrind's callgrind: deterministic,
unlike time on a shared machine. Benchmarks subtract two runs' counts so that start-up cancels out."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def available() -> bool:
    return shutil.which("valgrind") is not None


def instructions(*module_and_arguments: str) -> int:
    """Instructions counted for `python -m module_and_arguments...`, start to end."""
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m", *module_and_arguments],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = _COLLECTED.search(run.stderr)
    if found is None:
        raise RuntimeError(f"callgrind reported no count: {run.stderr[-500:]}")
    return int(found.group(1))
