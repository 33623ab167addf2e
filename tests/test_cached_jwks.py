"""CachedJwks under concurrency: one fetch in flight, every caller waits for it."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kit.error_details import Reason
from kit.errors import Unavailable
from kit.tokens import CachedJwks


def public_jwk(kid: str) -> dict[str, str]:
    jwk = jwt.algorithms.OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate().public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"}


class SlowJwks:
    """A JWKS endpoint that takes a while to answer, counting its fetches."""

    def __init__(self, keys: list[dict[str, str]], *, fails: bool = False) -> None:
        self.keys = keys
        self.fails = fails
        self.fetches = 0

    async def fetch(self) -> list[dict[str, str]]:
        self.fetches += 1
        await asyncio.sleep(0.05)
        if self.fails:
            raise Unavailable("the auth service's keys are unreachable", reason=Reason.KEYS_UNREACHABLE)
        return self.keys


def test_concurrent_callers_with_a_new_kid_all_wait_for_the_one_fetch() -> None:
    source = SlowJwks([public_jwk("k1")])
    jwks = CachedJwks(source.fetch)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(jwks.public_key("k1") for _ in range(50)))

    keys = asyncio.run(burst())
    assert all(key is not None for key in keys)
    assert source.fetches == 1


def test_an_unknown_kid_is_fetched_at_most_once_per_interval() -> None:
    source = SlowJwks([public_jwk("k1")])
    jwks = CachedJwks(source.fetch, min_refresh_interval=60)

    async def lookups() -> list[Any]:
        return [await jwks.public_key("made-up") for _ in range(5)]

    assert asyncio.run(lookups()) == [None] * 5
    assert source.fetches == 1


def test_when_the_fetch_fails_every_waiting_caller_gets_unavailable_and_the_next_caller_retries() -> None:
    source = SlowJwks([public_jwk("k1")], fails=True)
    jwks = CachedJwks(source.fetch, min_refresh_interval=60)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(jwks.public_key("k1") for _ in range(20)), return_exceptions=True)

    outcomes = asyncio.run(burst())
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes), outcomes
    assert source.fetches == 1
    source.fails = False

    async def again() -> Any:
        return await jwks.public_key("k1")

    assert asyncio.run(again()) is not None
    assert source.fetches == 2


def test_a_caller_giving_up_does_not_cancel_the_fetch_others_wait_for() -> None:
    source = SlowJwks([public_jwk("k1")])
    jwks = CachedJwks(source.fetch)

    async def scenario() -> Any:
        impatient = asyncio.create_task(jwks.public_key("k1"))
        patient = asyncio.create_task(jwks.public_key("k1"))
        await asyncio.sleep(0.01)
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        return await patient

    assert asyncio.run(scenario()) is not None
    assert source.fetches == 1
