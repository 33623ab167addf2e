"""The outbox relay's waits between polls, recorded instead of slept."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from sqlalchemy import MetaData

from kit.outbox import RELAY_BATCH_SIZE, Outbox, outbox_table


class ScriptedOutbox(Outbox):
    """Ships the given batch sizes in turn, then stops the relay."""

    def __init__(self, batches: list[int]) -> None:
        super().__init__(outbox_table(MetaData()))
        self._batches = batches

    async def ship_batch(self, *_: Any) -> int:
        if not self._batches:
            raise asyncio.CancelledError
        return self._batches.pop(0)


def waits_between_polls(batches: list[int], monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []

    async def no_wait(awaitable: Coroutine[Any, Any, Any], timeout: float) -> None:
        awaitable.close()
        waits.append(timeout)
        raise TimeoutError

    monkeypatch.setattr(asyncio, "wait_for", no_wait)
    relay = ScriptedOutbox(batches).relay(None, None, (), idle_interval=1.0, longest_idle_interval=4.0)  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(relay)
    return waits


def test_an_idle_relay_polls_less_and_less_often_up_to_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert waits_between_polls([0, 0, 0, 0], monkeypatch) == [2.0, 4.0, 4.0, 4.0]


def test_a_relay_that_shipped_polls_again_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    assert waits_between_polls([0, 0, 3, 0], monkeypatch) == [2.0, 4.0, 1.0, 2.0]


def test_a_full_batch_is_followed_by_the_next_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert waits_between_polls([RELAY_BATCH_SIZE, RELAY_BATCH_SIZE, 1], monkeypatch) == [1.0]
