"""kit.api_keys: presented keys parsed strictly, exchanged once, cached, never trusted when auth cannot answer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit.api_keys import MALFORMED, ApiKeyTokens, ExchangedToken, api_key_prefix, presented_api_key
from kit.error_details import Reason
from kit.errors import Unauthenticated, Unavailable
from tests.test_verified_tokens import token, verifier_with

KEY = "tnt_abcdefgh_" + "a" * 52
OTHER_KEY = "tnt_zyxwvuts_" + "b" * 52


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Auth:
    """An exchange that counts its calls and answers as told."""

    def __init__(self, *, expires_in: float = 300.0) -> None:
        self.calls: list[str] = []
        self.expires_in = expires_in
        self.refuse: str | None = None
        self.down = False
        self.delay = 0.0

    async def exchange(self, api_key: str) -> ExchangedToken:
        self.calls.append(api_key)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise Unavailable("auth is down", reason=Reason.AUTH_SERVICE_UNAVAILABLE)
        if self.refuse:
            raise Unauthenticated(self.refuse, reason=Reason.API_KEY_INVALID)
        return ExchangedToken(f"token-{len(self.calls)}", self.expires_in)


def test_a_key_is_exchanged_once_and_its_token_reused_until_shortly_before_it_expires() -> None:
    auth, clock = Auth(expires_in=300), Clock()
    tokens = ApiKeyTokens(auth.exchange, clock=clock)

    async def scenario() -> list[str]:
        seen = [await tokens.access_token(KEY) for _ in range(100)]
        clock.now += 269  # 31 s left: still used
        seen.append(await tokens.access_token(KEY))
        clock.now += 2  # 29 s left: renewed
        seen.append(await tokens.access_token(KEY))
        return seen

    seen = asyncio.run(scenario())
    assert seen[:101] == ["token-1"] * 101 and seen[101] == "token-2"
    assert len(auth.calls) == 2 and tokens.exchanges == 2


def test_concurrent_requests_with_one_new_key_share_one_exchange() -> None:
    auth = Auth()
    auth.delay = 0.05
    tokens = ApiKeyTokens(auth.exchange)

    async def scenario() -> list[str]:
        return await asyncio.gather(*(tokens.access_token(KEY) for _ in range(50)))

    assert asyncio.run(scenario()) == ["token-1"] * 50
    assert len(auth.calls) == 1


def test_a_refusal_is_remembered_briefly_then_asked_again() -> None:
    auth, clock = Auth(), Clock()
    auth.refuse = "API key has been revoked"
    tokens = ApiKeyTokens(auth.exchange, clock=clock, refusal_seconds=2.0)

    async def refused() -> str:
        with pytest.raises(Unauthenticated) as caught:
            await tokens.access_token(KEY)
        return caught.value.message

    assert [asyncio.run(refused()) for _ in range(10)] == ["API key has been revoked"] * 10
    assert len(auth.calls) == 1
    clock.now += 2.0
    asyncio.run(refused())
    assert len(auth.calls) == 2


def test_auth_unreachable_fails_closed_and_is_never_remembered() -> None:
    auth = Auth()
    auth.down = True
    tokens = ApiKeyTokens(auth.exchange)

    async def scenario() -> str:
        for _ in range(3):
            with pytest.raises(Unavailable):
                await tokens.access_token(KEY)
        auth.down = False
        return await tokens.access_token(KEY)

    assert asyncio.run(scenario()) == "token-4"
    assert len(auth.calls) == 4


def test_the_cache_is_bounded_and_forgets_the_oldest_key_first() -> None:
    auth = Auth()
    tokens = ApiKeyTokens(auth.exchange, remembered=2)
    third = "tnt_mmmmmmmm_" + "c" * 52

    async def scenario() -> None:
        for key in (KEY, OTHER_KEY, third, OTHER_KEY, third, KEY):
            await tokens.access_token(key)

    asyncio.run(scenario())
    # KEY was pushed out by the third key, so it is exchanged again at the end; the others were not.
    assert auth.calls == [KEY, OTHER_KEY, third, KEY]


def test_a_short_lived_token_is_used_for_most_of_its_life_only() -> None:
    auth, clock = Auth(expires_in=8), Clock()
    tokens = ApiKeyTokens(auth.exchange, clock=clock)

    async def scenario() -> None:
        await tokens.access_token(KEY)
        clock.now += 5.9  # a quarter of 8 s before expiry is 6 s
        await tokens.access_token(KEY)
        clock.now += 0.2
        await tokens.access_token(KEY)

    asyncio.run(scenario())
    assert len(auth.calls) == 2


def test_malformed_keys_are_refused_before_any_exchange() -> None:
    auth = Auth()
    tokens = ApiKeyTokens(auth.exchange)
    for bad in ("tnt_", "tnt_abc_def", "sk_live_abcdefgh_" + "a" * 52, KEY + "a", KEY.upper(), KEY[:-1] + "1"):
        with pytest.raises(Unauthenticated, match="malformed"):
            asyncio.run(tokens.access_token(bad))
    assert auth.calls == []


@given(st.text(max_size=80))
def test_any_text_is_either_a_well_formed_key_or_refused_as_malformed(text: str) -> None:
    try:
        prefix = api_key_prefix(text)
    except Unauthenticated as refused:
        # The same words whatever was sent: nothing of the presented text comes back.
        assert refused.message == MALFORMED
    else:
        assert text == f"tnt_{prefix}_{text[13:]}" and len(text) == 65


def test_keys_are_taken_from_either_header_and_never_from_both() -> None:
    assert presented_api_key(f"Bearer {KEY}", None) == KEY
    assert presented_api_key(f"bearer  {KEY} ", None) == KEY
    assert presented_api_key(None, KEY) == KEY
    assert presented_api_key("Bearer eyJhbGciOiJFZERTQSJ9.x.y", None) is None
    assert presented_api_key(None, None) is None
    with pytest.raises(Unauthenticated, match="not both"):
        presented_api_key("Bearer eyJ.x.y", KEY)
    with pytest.raises(Unauthenticated, match="malformed"):
        presented_api_key(None, "sk_live_123")
    with pytest.raises(Unauthenticated, match="malformed"):
        presented_api_key("Bearer tnt_short", None)


def test_a_tokens_actor_type_is_one_tenantry_issues_and_a_revoked_keys_token_says_so() -> None:
    verifier, keys, revoked = verifier_with()
    key_id = str(uuid.uuid4())
    principal = asyncio.run(verifier.verify(token(keys, actor_type="api_key", sub=key_id, sid=key_id)))
    assert principal.actor_type == "api_key" and str(principal.session_id) == key_id
    assert asyncio.run(verifier.verify(token(keys))).actor_type == "user"
    for forged in ("root", 1, ["api_key"]):
        with pytest.raises(Unauthenticated, match="invalid"):
            asyncio.run(verifier.verify(token(keys, actor_type=forged)))
    revoked.revoke(uuid.UUID(key_id), datetime.now(UTC) + timedelta(minutes=5))
    with pytest.raises(Unauthenticated, match="API key has been revoked"):
        asyncio.run(verifier.verify(token(keys, actor_type="api_key", sub=key_id, sid=key_id)))


def test_a_flood_of_refused_keys_never_pushes_out_the_tokens_of_keys_in_use() -> None:
    auth = Auth()
    tokens = ApiKeyTokens(auth.exchange, remembered=4, refusals_remembered=2)

    async def scenario() -> None:
        await tokens.access_token(KEY)
        auth.refuse = "API key is not valid"
        for index in range(50):
            with pytest.raises(Unauthenticated):
                await tokens.access_token(
                    f"tnt_{index:0>8}_".translate(str.maketrans("0123456789", "abcdefghij")) + "d" * 52
                )
        auth.refuse = None
        assert await tokens.access_token(KEY) == "token-1"

    asyncio.run(scenario())
    assert auth.calls.count(KEY) == 1 and len(auth.calls) == 51


def test_before_exchange_runs_only_when_a_key_must_be_exchanged_and_may_refuse() -> None:
    auth, clock = Auth(), Clock()
    tokens = ApiKeyTokens(auth.exchange, clock=clock)
    asked: list[str] = []

    def refuse() -> None:
        asked.append("refused")
        raise Unavailable("not now", reason=Reason.AUTH_SERVICE_UNAVAILABLE)

    async def scenario() -> None:
        first = await tokens.access_token(KEY, before_exchange=lambda: asked.append("asked"))
        # Remembered: no exchange, so nothing is asked.
        assert await tokens.access_token(KEY, before_exchange=refuse) == first
        with pytest.raises(Unavailable):
            await tokens.access_token(OTHER_KEY, before_exchange=refuse)

    asyncio.run(scenario())
    assert asked == ["asked", "refused"]
    assert auth.calls == [KEY]
