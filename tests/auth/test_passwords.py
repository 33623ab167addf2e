"""bcrypt: the real cost, off the event loop, and equal time for unknown users."""

from __future__ import annotations

import asyncio
import statistics
import time

import bcrypt

from services.auth.service.passwords import PasswordHasher


def test_default_cost_is_twelve() -> None:
    from services.auth.settings import AuthSettings

    assert AuthSettings.model_fields["bcrypt_rounds"].default == 12


def test_hashes_use_the_configured_cost() -> None:
    async def run() -> str:
        return await PasswordHasher(rounds=12, max_workers=1).hash("correct horse")

    hashed = asyncio.run(run())
    assert hashed.startswith("$2b$12$")
    assert bcrypt.checkpw(b"correct horse", hashed.encode())


def test_hashing_does_not_stall_the_event_loop() -> None:
    async def run() -> int:
        # One worker leaves a core for the loop on a two-core machine.
        hasher = PasswordHasher(rounds=12, max_workers=1)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        started = time.monotonic()
        await asyncio.gather(hasher.hash("password-one"), hasher.hash("password-two"))
        elapsed = time.monotonic() - started
        task.cancel()
        # The loop kept ticking while two cost-12 hashes ran.
        return int(ticks / max(elapsed / 0.01, 1) * 100)

    assert asyncio.run(run()) > 50


def test_unknown_user_costs_about_as_much_as_a_wrong_password() -> None:
    async def run() -> tuple[float, float]:
        hasher = PasswordHasher(rounds=10, max_workers=1)
        stored = await hasher.hash("the-real-password")

        async def timed(password_hash: str | None) -> float:
            started = time.perf_counter()
            assert not await hasher.verify("a-wrong-password", password_hash)
            return time.perf_counter() - started

        unknown = [await timed(None) for _ in range(5)]
        wrong = [await timed(stored) for _ in range(5)]
        return statistics.median(unknown), statistics.median(wrong)

    unknown, wrong = asyncio.run(run())
    assert 0.5 < unknown / wrong < 2.0
