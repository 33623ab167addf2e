"""bcrypt, off the event loop, in a bounded pool with a bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import bcrypt

from kit.error_details import Reason
from kit.errors import ResourceExhausted

T = TypeVar("T")

# bcrypt threads run this much lower in priority (nice) than the service, so that in a
# burst of logins the cores go first to the event loops that answer at once (the gateway's
# refusals, reads, this service's own loop); a hash is seconds of queued work anyway. With
# nothing else to run they go as fast as before. login_burst, alternating: 429 p99 90-115 ms
# at 5 against 121-173 at 0. At 10, measured earlier, the admitted logins starved behind
# steady reads (8-10 s against 5 s); at 5 they keep about a quarter of contended cores.
HASHING_NICENESS = 5


def _yield_to_other_work() -> None:
    # On Linux a thread's id names that thread alone to setpriority; raising one's own niceness needs no privilege.
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + HASHING_NICENESS))


class PasswordHasher:
    """Hashes and checks passwords in at most max_workers threads.

    bcrypt releases the GIL, so hashing never stalls the event loop, and the
    bound keeps a burst of logins from starving everything else. At most
    max_queue more wait for a thread: beyond that a caller is refused at once
    with a retry delay, rather than waiting out its deadline (a 504 at the
    gateway after 15 s, and the work done for nobody).
    """

    def __init__(self, *, rounds: int, max_workers: int, max_queue: int = 30) -> None:
        self._rounds = rounds
        self._workers = max_workers
        self._capacity = max_workers + max_queue
        self._in_flight = 0
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="bcrypt", initializer=_yield_to_other_work
        )
        # Checked when the user does not exist, so that a failed login costs
        # the same whether or not the email is known; timing it tells how long
        # one hash takes here, for the retry delay.
        started = time.perf_counter()
        self._decoy_hash = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds))
        self._seconds_per_hash = time.perf_counter() - started

    async def hash(self, password: str) -> str:
        with self.slot() as hashing:
            return await hashing.hash(password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        with self.slot() as hashing:
            return await hashing.verify(password, password_hash)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether a stored hash was made at another cost than the configured one."""
        try:
            return int(password_hash.split("$")[2]) != self._rounds
        except (IndexError, ValueError):
            return True

    @contextmanager
    def slot(self) -> Iterator[HashingSlot]:
        """A place among the threads or in their queue, taken at once or refused at once.

        A use case takes it before its first database work and keeps it through
        its hashes: refusal then costs a burst nothing, where a check that
        reserved nothing let every caller of a burst through to the database
        together, only for most of them to be refused after it."""
        if self._in_flight >= self._capacity:
            # Everything ahead of this caller would finish in about this long.
            wait = math.ceil(self._in_flight * self._seconds_per_hash / self._workers)
            raise ResourceExhausted(
                "too many password checks in progress; retry shortly",
                retry_after_seconds=wait,
                reason=Reason.PASSWORD_CHECKS_BUSY,
            )
        self._in_flight += 1
        try:
            yield HashingSlot(self._pool, self._rounds, self._decoy_hash)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class HashingSlot:
    """Hashing for a caller that holds a place (PasswordHasher.slot): it never
    waits for more than the threads ahead of it in the bounded queue."""

    def __init__(self, pool: ThreadPoolExecutor, rounds: int, decoy_hash: bytes) -> None:
        self._pool = pool
        self._rounds = rounds
        self._decoy_hash = decoy_hash

    async def hash(self, password: str) -> str:
        hashed = await self._run(bcrypt.hashpw, password.encode("utf-8"), bcrypt.gensalt(self._rounds))
        return hashed.decode("ascii")

    async def verify(self, password: str, password_hash: str | None) -> bool:
        encoded = password.encode("utf-8")
        if len(encoded) > 72:
            # Never hashed, so never matches; still spend the same time.
            encoded = encoded[:72]
            password_hash = None
        target = password_hash.encode("ascii") if password_hash else self._decoy_hash
        matches = await self._run(bcrypt.checkpw, encoded, target)
        return matches and password_hash is not None

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
