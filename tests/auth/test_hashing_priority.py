"""bcrypt threads run at a lower priority than the event loops, so that a burst of logins
leaves the cores to the work that answers at once (refusals, reads)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from services.auth.service.passwords import HASHING_NICENESS, PasswordHasher


def niceness(thread_id: int) -> int:
    fields = Path(f"/proc/self/task/{thread_id}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # the 19th field of stat: nice


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads thread priorities from Linux's /proc")
def test_hashing_threads_are_niced_and_the_event_loop_is_not() -> None:
    hasher = PasswordHasher(rounds=4, max_workers=2)
    seen: list[int] = []

    def note_niceness(_: bytes) -> bool:
        seen.append(niceness(threading.get_native_id()))
        return True

    async def main() -> None:
        hashed = await hasher.hash("a-password-1")
        assert await hasher.verify("a-password-1", hashed)
        # The pool's own thread reports its niceness.
        await asyncio.get_running_loop().run_in_executor(hasher._pool, note_niceness, b"")

    asyncio.run(main())
    hasher.close()
    assert niceness(threading.get_native_id()) == os.nice(0)  # this thread (the event loop's) is as it was
    assert seen == [min(19, os.nice(0) + HASHING_NICENESS)]
