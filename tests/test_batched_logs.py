"""Request lines are written together (kit.logging.BatchedStreamHandler): soon, whole, in order, bounded in
what waits, and all of them at exit; every other line, and a request line at WARNING, at once, after what
waits. A request's line (log_fields) is the line its LogRecord would have been formatted into."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from devtools.stack import ROOT, python_path
from kit.logging import (
    FLUSH_DELAY_SECONDS,
    MAX_PENDING_LINES,
    BatchedStreamHandler,
    JsonFormatter,
    log_fields,
)
from tests.stack import eventually


class RecordingStream:
    """A stdout that remembers each write (a write here is a system call there)."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        with self._lock:
            return "".join(self.writes).splitlines()


Logged = tuple[logging.Logger, RecordingStream, BatchedStreamHandler]


@pytest.fixture
def logged() -> Iterator[Logged]:
    stream = RecordingStream()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(JsonFormatter("tenants", worker=1))
    logger = logging.getLogger(f"test.batched.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, stream, handler
    handler.close()


def alone(logged: Logged) -> Logged:
    """pytest's own capturing handlers join every logger during a test: then a request line takes the
    ordinary path (so they see it). Here the handler is left alone, as in a service."""
    logger, _, handler = logged
    logger.handlers[:] = [handler]
    return logged


def fields(index: int) -> dict[str, object]:
    return {"method": "/x.v1.S/M", "status": "OK", "duration_ms": 0.5, "request_id": f"r-{index}", "user_id": None}


def test_request_lines_are_written_together_soon_and_in_order(logged: Logged) -> None:
    logger, stream, _ = alone(logged)
    for index in range(100):
        log_fields(logger, logging.INFO, "rpc", fields(index))
    lines = eventually(lambda: len(stream.lines()) == 100 and stream.lines(), timeout=5)
    assert [json.loads(line)["request_id"] for line in lines] == [f"r-{index}" for index in range(100)]
    assert len(stream.writes) <= 3  # one write for many lines, not one each


def test_a_line_waits_at_most_the_delay(logged: Logged) -> None:
    logger, stream, _ = alone(logged)
    started = time.monotonic()
    log_fields(logger, logging.INFO, "rpc", fields(0))
    eventually(lambda: stream.lines(), timeout=5, interval=0.005)
    assert time.monotonic() - started < FLUSH_DELAY_SECONDS + 1.0  # the delay, and a busy machine's slack


def test_any_other_line_is_written_at_once(logged: Logged) -> None:
    logger, stream, _ = alone(logged)
    logger.info("listening", extra={"address": "127.0.0.1:50052"})
    log_fields(logger, logging.WARNING, "rpc", fields(0))
    assert [json.loads(line)["message"] for line in stream.lines()] == ["listening", "rpc"]


def test_a_warning_is_written_at_once_after_what_waits(logged: Logged) -> None:
    logger, stream, _ = alone(logged)
    log_fields(logger, logging.INFO, "rpc", fields(0))
    logger.warning("revocation list lost", extra={"source": "listener"})
    assert [json.loads(line)["message"] for line in stream.lines()] == ["rpc", "revocation list lost"]


def test_what_waits_is_bounded(logged: Logged) -> None:
    logger, stream, _ = alone(logged)
    for index in range(MAX_PENDING_LINES):
        log_fields(logger, logging.INFO, "rpc", fields(index))
    assert len(stream.lines()) == MAX_PENDING_LINES  # written by the caller, no thread needed


def test_closing_writes_what_waits(logged: Logged) -> None:
    logger, stream, handler = alone(logged)
    log_fields(logger, logging.INFO, "rpc", fields(0))
    handler.close()
    assert len(stream.lines()) == 1
    log_fields(logger, logging.INFO, "rpc", fields(1))  # after close: written at once, never lost
    assert len(stream.lines()) == 2


def test_a_request_line_is_what_its_record_would_have_been(logged: Logged) -> None:
    logger, stream, handler = alone(logged)
    log_fields(logger, logging.INFO, "rpc", fields(7))
    handler.flush()
    fast = json.loads(stream.lines()[0])
    record = logger.makeRecord(logger.name, logging.INFO, "", 0, "rpc", (), None, extra=fields(7))
    assert handler.formatter is not None
    slow = json.loads(handler.formatter.format(record))
    assert list(fast) == list(slow)
    assert {key: value for key, value in fast.items() if key != "ts"} == {
        key: value for key, value in slow.items() if key != "ts"
    }


def test_a_line_that_cannot_be_written_never_reaches_the_caller(
    logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream, handler = alone(logged)
    monkeypatch.setattr(logging, "raiseExceptions", False)  # logging would print its report on stderr
    looped: dict[str, object] = {}
    looped["self"] = looped  # JSON cannot hold it
    log_fields(logger, logging.INFO, "rpc", looped)
    log_fields(logger, logging.INFO, "rpc", fields(1))
    handler.flush()
    assert [json.loads(line)["request_id"] for line in stream.lines()] == ["r-1"]


def test_a_disabled_logger_writes_nothing(logged: Logged) -> None:
    logger, stream, handler = alone(logged)
    logger.disabled = True
    log_fields(logger, logging.INFO, "rpc", fields(0))
    handler.flush()
    assert stream.lines() == []


def test_a_capturing_handler_still_sees_request_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.batched.captured")
    with caplog.at_level(logging.INFO, logger=logger.name):
        log_fields(logger, logging.INFO, "rpc", fields(3))
    assert [record.__dict__["request_id"] for record in caplog.records] == ["r-3"]


def test_every_line_is_written_when_the_process_exits() -> None:
    script = (
        "import logging; from kit.logging import configure_logging, log_fields; configure_logging('auth');"
        " log = logging.getLogger('tenantry.rpc');"
        " [log_fields(log, logging.INFO, 'rpc', {'request_id': str(i)}) for i in range(300)];"
        " raise SystemExit(0)"
    )
    env = {**os.environ, "PYTHONPATH": python_path(), "LOG_FORMAT": "json"}
    finished = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=30)
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.decode().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [str(index) for index in range(300)]
