"""bcrypt, off the event loop, in a bounded pool."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

import bcrypt


class PasswordHasher:
    """Hashes and checks passwords in at most max_workers threads.

    bcrypt releases the GIL, so hashing never stalls the event loop, and the
    bound keeps a burst of logins from starving everything else: extra
    logins wait their turn in the pool's queue.
    """

    def __init__(self, *, rounds: int, max_workers: int) -> None:
        self._rounds = rounds
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bcrypt")
        # Checked when the user does not exist, so that a failed login costs
        # the same whether or not the email is known.
        self._decoy_hash = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        hashed = await loop.run_in_executor(
            self._pool, bcrypt.hashpw, password.encode("utf-8"), bcrypt.gensalt(self._rounds)
        )
        return hashed.decode("ascii")

    async def verify(self, password: str, password_hash: str | None) -> bool:
        encoded = password.encode("utf-8")
        if len(encoded) > 72:
            # Never hashed, so never matches; still spend the same time.
            encoded = encoded[:72]
            password_hash = None
        loop = asyncio.get_running_loop()
        target = password_hash.encode("ascii") if password_hash else self._decoy_hash
        matches = await loop.run_in_executor(self._pool, bcrypt.checkpw, encoded, target)
        return matches and password_hash is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
