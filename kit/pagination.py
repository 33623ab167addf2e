"""Opaque keyset page tokens: the position after the last row of a page."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from kit.errors import InvalidArgument

T = TypeVar("T")


def page_size(requested: int, *, default: int = 50, maximum: int = 100) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(requested or default, maximum)


def one_page(rows: list[T], page_size: int, position: Callable[[T], tuple[datetime, UUID]]) -> tuple[list[T], str]:
    """Cuts rows fetched with limit page_size + 1 to a page and its next token ("" on the last page)."""
    if len(rows) <= page_size:
        return rows, ""
    page = rows[:page_size]
    return page, encode_cursor(*position(page[-1]))


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, UUID] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_at, row_id = json.loads(raw)
        return datetime.fromisoformat(created_at), UUID(row_id)
    except (ValueError, TypeError):
        raise InvalidArgument("page_token", "is not a token this service issued") from None
