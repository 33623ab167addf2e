"""Structured JSON logs: one object per line on stdout."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

# gRPC's C core prints plain text to stderr, which would break the one-JSON-
# object-per-line logs. It reads GRPC_VERBOSITY once, when grpc is imported,
# so this runs on importing `kit` (see kit/__init__.py), before grpc loads.
# What matters of it reaches us as call statuses; GRPC_VERBOSITY=ERROR shows it.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

_STANDARD_ATTRIBUTES = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, *, tracebacks: bool = False) -> None:
        super().__init__()
        self.service = service
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
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
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO", *, tracebacks: bool = False) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service, tracebacks=tracebacks))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # SQLAlchemy and alembic would otherwise log statements with parameters.
    for noisy in ("sqlalchemy", "alembic", "asyncio", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
