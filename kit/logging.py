"""Logs on stdout: one JSON object per line, or readable lines when a person watches a terminal.

LOG_FORMAT picks: `auto` (the default: text on a terminal, JSON otherwise), `json` or `text`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

# gRPC's C core prints plain text to stderr, which would break the one-JSON-
# object-per-line logs. It reads GRPC_VERBOSITY once, when grpc is imported,
# so this runs on importing `kit` (see kit/__init__.py), before grpc loads.
# What matters of it reaches us as call statuses; GRPC_VERBOSITY=ERROR shows it.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

# log_fields leaves its fields on the record under this name too, in their order, so that formatting a
# request's line need not sort them out of the record's thirty-odd standard attributes.
_FIELDS = "tenantry_fields"
_STANDARD_ATTRIBUTES = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", _FIELDS}
# A request's line waits at most this long to be written (BatchedStreamHandler): one write for many
# lines costs a fraction of a write per line, and the request lines are most of them.
FLUSH_DELAY_SECONDS = 0.05
# Written at once, past this many lines waiting: memory stays bounded under any load.
MAX_PENDING_LINES = 256
# One encoder for every line: json.dumps(..., default=str) would build a new one each time.
# (orjson would encode a line in a third of the time, but without the spaces after
# `:` and `,` that readers of these lines, tests among them, match on.)
_ENCODER = json.JSONEncoder(default=str)


def log_fields(logger: logging.Logger, level: int, message: str, fields: Mapping[str, Any]) -> None:
    """logger.log(level, message, extra=fields), for a line written on every request:
    the same record, without looking up the caller's file and line (which no
    formatter here prints) and without the record being built when the level is off."""
    if not logger.isEnabledFor(level):
        return
    handler = _sole_json_handler(logger, level)
    if handler is not None:
        # The one line that record would have been formatted into, without the record: a LogRecord
        # and the logging module's path to the handler were most of what a request's line cost.
        formatter = cast(JsonFormatter, handler.formatter)
        try:
            line = formatter.line(time.time(), level, logger.name, message, fields)
        except Exception:  # never the caller's problem: the ordinary path reports it as logging does
            line = None
        if line is not None:
            handler.add_line(line, waits=level < logging.WARNING)
            return
    record = logger.makeRecord(logger.name, level, "", 0, message, (), None, extra=fields)
    record.__dict__[_FIELDS] = fields
    logger.handle(record)


def _sole_json_handler(logger: logging.Logger, level: int) -> BatchedStreamHandler | None:
    """The handler a record of the logger's would reach, if it is the only one, a JSON one, and no
    filter stands in the way (a test's capturing handler, or any other, takes the ordinary path)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        found.extend(current.handlers)
        if not current.propagate or len(found) > 1:
            break
        current = current.parent
    if len(found) != 1:
        return None
    handler = found[0]
    if (
        type(handler) is not BatchedStreamHandler
        or handler.filters
        or level < handler.level
        or not isinstance(handler.formatter, JsonFormatter)
    ):
        return None
    return handler


def _extra_fields(record: logging.LogRecord) -> Iterable[tuple[str, Any]]:
    """The fields a record carries beyond logging's own, in the order they were given."""
    fields = record.__dict__.get(_FIELDS)
    if fields is not None:
        return fields.items()  # type: ignore[no-any-return]
    return [(key, value) for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES]


class _Timestamps:
    """ISO 8601 UTC timestamps with milliseconds; the part up to the second is made once a second."""

    def __init__(self) -> None:
        # One attribute, replaced whole: lines are formatted in more than one thread.
        self._made: tuple[int, str] = (-1, "")

    def format(self, created: float) -> str:
        second = int(created)
        made_for, prefix = self._made
        if second != made_for:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._made = (second, prefix)
        return f"{prefix}.{int((created - second) * 1000):03d}+00:00"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, *, tracebacks: bool = False, worker: int | None = None) -> None:
        super().__init__()
        self.service = service
        self.worker = worker
        self.tracebacks = tracebacks
        self._timestamps = _Timestamps()

    def _entry(self, created: float, level: int, logger: str, message: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ts": self._timestamps.format(created),
            "level": logging.getLevelName(level).lower(),
            "service": self.service,
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        entry["logger"] = logger
        entry["message"] = message
        return entry

    def line(self, created: float, level: int, logger: str, message: str, fields: Mapping[str, Any]) -> str:
        """What format gives for a record of log_fields'."""
        entry = self._entry(created, level, logger, message)
        entry.update(fields)
        return _ENCODER.encode(entry)

    def format(self, record: logging.LogRecord) -> str:
        entry = self._entry(record.created, record.levelno, record.name, record.getMessage())
        entry.update(_extra_fields(record))
        # Exception text is left out by default: tracebacks may carry SQL,
        # parameters or secrets. The error type is enough to find the cause;
        # LOG_TRACEBACKS=true is for a developer's own machine only.
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
            if self.tracebacks:
                entry["traceback"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


class TextFormatter(logging.Formatter):
    """`12:03:04.567 INFO  auth     listening  address=127.0.0.1:50051`: the JSON entry, for eyes."""

    _COLOURS = {"DEBUG": "\033[2m", "INFO": "", "WARNING": "\033[33m", "ERROR": "\033[31m", "CRITICAL": "\033[1;31m"}

    def __init__(
        self, service: str, *, tracebacks: bool = False, colour: bool = False, worker: int | None = None
    ) -> None:
        super().__init__()
        self.service = service if worker is None else f"{service}/{worker}"
        self.tracebacks = tracebacks
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.") + f"{int(record.msecs):03d}"
        fields = list(_extra_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            fields.append(("error_type", record.exc_info[0].__name__))
        line = f"{moment} {record.levelname:<7} {self.service:<8} {record.getMessage()}"
        if fields:
            line += "  " + " ".join(f"{key}={_plain(value)}" for key, value in fields if value is not None)
        if self.colour and self._COLOURS.get(record.levelname):
            line = f"{self._COLOURS[record.levelname]}{line}\033[0m"
        if self.tracebacks and record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _plain(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if not text or any(char.isspace() for char in text) else text


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler whose request lines (log_fields, one per call) are written together: at most
    FLUSH_DELAY_SECONDS after the first of them, at once past MAX_PENDING_LINES, and all that wait at
    exit (logging.shutdown flushes every handler). Every other line, and a request line at WARNING or
    worse, is written at once, after what waits: lines keep their order. A write per line was a third
    of what a request's line cost a service under load. A thread writes the lines that wait; it sleeps
    while none do, so an idle process never wakes for its logs."""

    def __init__(self, stream: Any, *, delay: float = FLUSH_DELAY_SECONDS) -> None:
        super().__init__(stream)
        self._delay = delay
        self._pending: list[str] = []
        assert self.lock is not None
        self._waiting = threading.Condition(self.lock)
        self._closed = False
        self._writer: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called by Handler.handle with self.lock held, the lock _waiting is built on.
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.add_line(line, waits=False)

    def add_line(self, line: str, *, waits: bool) -> None:
        """waits: the line may wait for others (a request line); otherwise it is written now."""
        with self._waiting:
            self._pending.append(line + self.terminator)
            if not waits or len(self._pending) >= MAX_PENDING_LINES or self._closed:
                self._write_pending()
            elif len(self._pending) == 1:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_later, name="log-writer", daemon=True)
                    self._writer.start()
                self._waiting.notify()

    def _write_later(self) -> None:
        while True:
            with self._waiting:
                while not self._pending and not self._closed:
                    self._waiting.wait()
                if self._closed:
                    return
            time.sleep(self._delay)  # without the lock: lines keep coming meanwhile
            with self._waiting:
                self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:  # a closed or broken stdout must not break the caller, as in StreamHandler
                pass

    def flush(self) -> None:
        with self._waiting:
            self._write_pending()

    def close(self) -> None:
        with self._waiting:
            self._write_pending()
            self._closed = True
            self._waiting.notify()
        super().close()


def log_formatter(
    service: str, *, tracebacks: bool, log_format: str, stream: Any, worker: int | None = None
) -> logging.Formatter:
    chosen = log_format.strip().lower() or "auto"
    if chosen not in ("auto", "json", "text"):
        raise SystemExit(f"{service}: invalid settings: LOG_FORMAT: must be auto, json or text")
    on_terminal = bool(getattr(stream, "isatty", lambda: False)())
    if chosen == "text" or (chosen == "auto" and on_terminal):
        return TextFormatter(service, tracebacks=tracebacks, colour=on_terminal, worker=worker)
    return JsonFormatter(service, tracebacks=tracebacks, worker=worker)


def configure_logging(
    service: str,
    level: str = "INFO",
    *,
    tracebacks: bool = False,
    log_format: str | None = None,
    worker: int | None = None,
) -> None:
    """worker: this process's index when several serve one port (kit.workers), on every line."""
    handler = BatchedStreamHandler(sys.stdout)
    handler.setFormatter(
        log_formatter(
            service,
            tracebacks=tracebacks,
            log_format=os.environ.get("LOG_FORMAT", "auto") if log_format is None else log_format,
            stream=sys.stdout,
            worker=worker,
        )
    )
    # No formatter here prints the thread or process, and each costs a lookup on every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for replaced in root.handlers:
        if isinstance(replaced, BatchedStreamHandler):
            replaced.close()  # writes what waits and ends its thread
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # SQLAlchemy and alembic would otherwise log statements with parameters.
    for noisy in ("sqlalchemy", "alembic", "asyncio", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
