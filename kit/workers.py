"""Several processes serving one port, the kernel spreading new connections among them.

One Python process is one core's worth of event loop: the gateway's HTTP and JSON,
a service's gRPC calls. With N workers the first process binds its port with
SO_REUSEPORT and, once it listens, starts N-1 more by running its own command line
again (fresh interpreters: nothing of the first's gRPC state is inherited), each
told its index and the first's pid in TENANTRY_WORKER. They bind the same port and
the kernel hands each new connection to one of them; a gRPC client's calls follow
its connection, so they spread over the workers as its callers' connections do.

Each worker is a whole replica with its own caches, limits and database pool, as a
second container would be. The first process is the one to signal: on SIGTERM or
SIGINT it stops accepting, asks the others to stop the same way and waits for them.
It starts again a worker that dies; a worker whose first process is gone stops by itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

WORKER_VARIABLE = "TENANTRY_WORKER"
STOP_SECONDS = 10.0
# How often a worker checks that the first process is still there, and the first its workers.
FIRST_PROCESS_CHECK_SECONDS = 1.0
WORKER_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Worker:
    """This process's place among the workers: index 0 is the first, which has no first_pid."""

    index: int = 0
    first_pid: int | None = None

    @property
    def is_first(self) -> bool:
        return self.first_pid is None

    def log_label(self, count: int) -> int | None:
        """The index every log line carries when there are several workers."""
        return self.index if count > 1 else None


def this_worker() -> Worker:
    value = os.environ.get(WORKER_VARIABLE, "")
    if not value:
        return Worker()
    first_pid, _, index = value.partition(":")
    if not (first_pid.isdigit() and index.isdigit()):
        # Set by a first process for its workers only; anything else was set by hand.
        raise SystemExit(f"{WORKER_VARIABLE} must be FIRST_PID:INDEX, as a first process sets it for its workers")
    return Worker(index=int(index), first_pid=int(first_pid))


class OtherWorkers:
    """The first process's workers 1..count-1: started once it listens, started again if one dies, stopped with it."""

    def __init__(self, worker: Worker, count: int) -> None:
        # Only the first process starts workers; the others have none of their own.
        self._count = count if worker.is_first else 1
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def start(self) -> None:
        for index in range(1, self._count):
            self._processes[index] = _start(index)

    async def keep_running(self) -> None:
        """A worker that died (a crash, the OOM killer) is started again: the port keeps its processes."""
        if self._count == 1:
            return  # nothing to watch: no timer waking a single process every second
        while not self._stopping:
            await asyncio.sleep(WORKER_CHECK_SECONDS)
            for index, process in list(self._processes.items()):
                if process.poll() is not None and not self._stopping:
                    log.warning(
                        "worker exited; starting it again", extra={"worker": index, "exit_code": process.returncode}
                    )
                    self._processes[index] = _start(index)

    def ask_to_stop(self) -> None:
        self._stopping = True
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()  # SIGTERM: it finishes what it has in flight, as the first does

    def wait_stopped(self) -> None:
        for process in self._processes.values():
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        self.ask_to_stop()
        self.wait_stopped()


def _start(index: int) -> subprocess.Popen[bytes]:
    """Runs this process's command line again, with its environment and the worker's place."""
    command = [sys.executable, *sys.orig_argv[1:]]
    return subprocess.Popen(command, env={**os.environ, WORKER_VARIABLE: f"{os.getpid()}:{index}"})


async def stop_with_first(first_pid: int) -> None:
    """Sends this process the same graceful SIGTERM an operator would once the first process is gone."""
    while os.getppid() == first_pid:
        await asyncio.sleep(FIRST_PROCESS_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
