"""Auth migration 0003 (email delivery) upgrades, downgrades and upgrades again with data in place."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from kit import migrations


def columns(url: str, table: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'auth' AND table_name = %s",
            (table,),
        ).fetchall()
    return {row[0] for row in rows}


def test_email_delivery_migration_keeps_queued_and_sent_emails_both_ways(fresh_database) -> None:  # type: ignore[no-untyped-def]
    url = fresh_database()
    migrations.upgrade("auth", url, "0002")
    queued, sent = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url) as connection:
        for message_id, status in ((queued, "queued"), (sent, "sent")):
            connection.execute(
                "INSERT INTO auth.email_outbox (id, recipient, template, language, payload, status, created_at) "
                "VALUES (%s, 'someone@example.test', 'invitation', 'en', '{}', %s, '2026-11-01T00:00:00Z')",
                (message_id, status),
            )
    migrations.upgrade("auth", url)
    with psycopg.connect(url) as connection:
        due = dict(connection.execute("SELECT id, next_attempt_at::text FROM auth.email_outbox").fetchall())
        # A queued email is due from when it was queued; a sent one has no next attempt.
        assert due == {queued: "2026-11-01 00:00:00+00", sent: None}
        connection.execute(
            "INSERT INTO auth.users (id, email, full_name, password_hash, created_at, updated_at, preferred_language) "
            "VALUES (%s, 'af@example.test', 'P', 'h', now(), now(), 'af')",
            (uuid.uuid4(),),
        )
    # Queued without a next attempt is refused: the sender would never see it.
    with psycopg.connect(url) as connection, pytest.raises(psycopg.errors.CheckViolation):
        connection.execute("UPDATE auth.email_outbox SET next_attempt_at = NULL WHERE id = %s", (queued,))
    migrations.downgrade("auth", url, "0002")
    assert "next_attempt_at" not in columns(url, "email_outbox")
    assert "preferred_language" not in columns(url, "users")
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT count(*) FROM auth.email_outbox").fetchone() == (2,)
    migrations.upgrade("auth", url)
    assert {"next_attempt_at"} <= columns(url, "email_outbox") and {"preferred_language"} <= columns(url, "users")
    with psycopg.connect(url) as connection:
        assert connection.execute(
            "SELECT next_attempt_at IS NOT NULL FROM auth.email_outbox WHERE id = %s", (queued,)
        ).fetchone() == (True,)
