"""RevokedSessions fails closed: no answer before the snapshot, none after the staleness bound."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from tenantry_client import revocations as client_revocations

from kit.errors import Unavailable
from kit.revocations import RevokedSessions


def later() -> datetime:
    # Taken when the test runs: a constant of the module was in the past once a
    # long suite reached the test 15 minutes after collecting it.
    return datetime.now(UTC) + timedelta(minutes=15)


def test_nothing_is_answered_before_the_snapshot_is_complete() -> None:
    revoked = RevokedSessions()
    revoked.revoke(uuid.uuid4(), later())
    with pytest.raises(Unavailable, match="not loaded yet"):
        revoked.is_revoked(uuid.uuid4())
    assert not revoked.is_current()


def test_after_the_snapshot_revoked_and_live_sessions_are_told_apart() -> None:
    revoked = RevokedSessions()
    ended, live = uuid.uuid4(), uuid.uuid4()
    revoked.revoke(ended, later())
    revoked.mark_complete()
    assert revoked.is_revoked(ended) and not revoked.is_revoked(live)


def test_a_lost_stream_is_trusted_for_the_bound_then_refused_until_a_new_snapshot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(client_revocations.time, "monotonic", lambda: now[0])
    revoked = RevokedSessions(max_staleness=5)
    session = uuid.uuid4()
    revoked.mark_complete()
    revoked.mark_source_lost()
    now[0] += 4.9
    assert revoked.is_revoked(session) is False
    now[0] += 0.2
    with pytest.raises(Unavailable, match="not current"):
        revoked.is_revoked(session)
    revoked.mark_source_lost()  # losing it again does not restart the clock
    with pytest.raises(Unavailable):
        revoked.is_revoked(session)
    revoked.mark_complete()
    assert revoked.is_revoked(session) is False
