"""Logs on stdout: one JSON object per line, or readable lines when a person watches a terminal.

LOG_FORMAT picks: `auto` (the default: text on a terminal, JSON otherwise), `json` or `text`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# gRPC's C core prints plain text to stderr, which would break the one-JSON-
# object-per-line logs. It reads GRPC_VERBOSITY once, when grpc is imported,
# so this runs on importing `kit` (see kit/__init__.py), before grpc loads.
# What matters of it reaches us as call statuses; GRPC_VERBOSITY=ERROR shows it.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

_STANDARD_ATTRIBUTES = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# One encoder for every line: json.dumps(..., default=str) would build a new one each time.
# (orjson would encode a line in a third of the time, but without the spaces after
# `:` and `,` that readers of these lines, tests among them, match on.)
_ENCODER = json.JSONEncoder(default=str)


def log_fields(logger: logging.Logger, level: int, message: str, fields: Mapping[str, Any]) -> None:
    """logger.log(level, message, extra=fields), for a line written on every request:
    the same record, without looking up the caller's file and line (which no
    formatter here prints) and without the record being built when the level is off."""
    if logger.isEnabledFor(level):
        logger.handle(logger.makeRecord(logger.name, level, "", 0, message, (), None, extra=fields))


class _Timestamps:
    """ISO 8601 UTC timestamps with milliseconds; the part up to the second is made once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}+00:00"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, *, tracebacks: bool = False, worker: int | None = None) -> None:
        super().__init__()
        self.service = service
        self.worker = worker
        self.tracebacks = tracebacks
        self._timestamps = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamps.format(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            **({} if self.worker is None else {"worker": self.worker}),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES)
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
        fields = [(key, value) for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES]
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
    handler = logging.StreamHandler(sys.stdout)
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
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # SQLAlchemy and alembic would otherwise log statements with parameters.
    for noisy in ("sqlalchemy", "alembic", "asyncio", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
