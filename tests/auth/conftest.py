"""Fixtures of the auth tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.smtp_server import SmtpServer


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback for one test module."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
