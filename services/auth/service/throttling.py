"""Throttles in the auth service itself, so that every path (REST and direct
gRPC alike) is covered, shared by every replica through the database.

Keys are hashes, so the table never holds an email or an address in the
clear, and an unknown email is throttled exactly like a known one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kit.context import current_request
from kit.error_details import Reason
from kit.errors import ResourceExhausted
from services.auth.repository import throttles


@dataclass(frozen=True)
class ThrottlePolicy:
    name: str
    # Attempts in a window; the last of them blocks what follows.
    allowed: int
    window: timedelta
    # The first block; each further attempt in the window doubles it, up to max_block.
    first_block: timedelta
    max_block: timedelta


# Failed logins (and wrong current passwords) per email.
LOGIN_FAILURES = ThrottlePolicy("login", 5, timedelta(minutes=15), timedelta(seconds=30), timedelta(minutes=15))
# Emails a person can make Tenantry send (reset, verification, registration) per address and per client.
EMAIL_REQUESTS = ThrottlePolicy("mail", 5, timedelta(hours=1), timedelta(minutes=5), timedelta(hours=1))
CLIENT_REQUESTS = ThrottlePolicy("client", 30, timedelta(hours=1), timedelta(minutes=5), timedelta(hours=1))

REFUSAL = "too many attempts; retry later"


def throttle_key(policy: ThrottlePolicy, subject: str) -> str:
    return f"{policy.name}:{hashlib.sha256(subject.encode()).hexdigest()}"


def client_address() -> str:
    request = current_request()
    return (request.peer_ip if request else None) or "unknown"


async def refuse_if_blocked(session: AsyncSession, policy: ThrottlePolicy, subject: str) -> bool:
    """Refuses while the subject is blocked; else whether it has attempts on record
    (none: there is nothing to forgive after a success)."""
    on_record, until = await throttles.recorded(session, throttle_key(policy, subject))
    now = datetime.now(UTC)
    if until is not None and until > now:
        raise ResourceExhausted(
            REFUSAL, retry_after_seconds=math.ceil((until - now).total_seconds()), reason=Reason.TOO_MANY_ATTEMPTS
        )
    return on_record


async def count_attempt(session: AsyncSession, policy: ThrottlePolicy, subject: str) -> None:
    """Counts one attempt (a failure, or a request); past the allowance the
    subject is blocked for a delay that grows with every further attempt."""
    now = datetime.now(UTC)
    key = throttle_key(policy, subject)
    hits = await throttles.count_hit(session, key, now=now, window_start=now - policy.window)
    if hits >= policy.allowed:
        delay = min(policy.first_block * 2 ** (hits - policy.allowed), policy.max_block)
        await throttles.block(session, key, now + delay)


async def limit_request(session: AsyncSession, policy: ThrottlePolicy, subject: str) -> None:
    """For requests that are throttled whatever their outcome: refuses while
    blocked, else counts this one."""
    await refuse_if_blocked(session, policy, subject)
    await count_attempt(session, policy, subject)


async def forgive(session: AsyncSession, policy: ThrottlePolicy, subject: str) -> None:
    await throttles.clear(session, throttle_key(policy, subject))
