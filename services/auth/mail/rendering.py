"""Emails from templates: services/auth/mail/templates/<language>/<template>.txt and .html.

A .txt file starts with a "Subject: ..." line and a blank line, then the plain-text body;
the .html file is the HTML body. Both are string.Template texts ($name or ${name}) filled
from the message's payload, plus ${product}. Every value put into HTML is escaped; values
named *_at are ISO times and are shown as "2026-11-22 04:28 UTC". A payload may carry a
tenant's own product_name (${product}) and sender_name (the From display name).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

TEMPLATE_ROOT = Path(__file__).resolve().parent / "templates"
DEFAULT_LANGUAGE = "en"
# Every language with templates; a message in any other is written in the default.
LANGUAGES: tuple[str, ...] = tuple(sorted(path.name for path in TEMPLATE_ROOT.iterdir() if path.is_dir()))
DEFAULT_PRODUCT_NAME = "Tenantry"


class TemplateError(Exception):
    """The message cannot be written: an unknown template or a payload that lacks a value.
    Trying again would not help."""


@dataclass(frozen=True)
class RenderedEmail:
    language: str
    subject: str
    text: str
    html: str
    # The display name of the sender, when the payload names one (a tenant's own).
    sender_name: str | None


@dataclass(frozen=True)
class _Source:
    subject: Template
    text: Template
    html: Template


def render(template: str, language: str, payload: dict[str, Any]) -> RenderedEmail:
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    source = _source(template, language)
    values = {name: _shown(name, value) for name, value in payload.items()}
    values.setdefault("product", str(payload.get("product_name") or DEFAULT_PRODUCT_NAME))
    try:
        subject = source.subject.substitute(values)
        text = source.text.substitute(values)
        body = source.html.substitute({name: html.escape(value, quote=True) for name, value in values.items()})
    except (KeyError, ValueError) as error:
        raise TemplateError(f"template {template!r} cannot be filled: {type(error).__name__} {error}") from None
    # A header is one line, whatever a value held.
    subject = " ".join(subject.split())
    sender_name = str(payload["sender_name"]) if payload.get("sender_name") else None
    return RenderedEmail(language, subject, text, body, sender_name)


@cache
def _source(template: str, language: str) -> _Source:
    # Names come from the outbox, written by this service; still, never leave the folder.
    if not template.replace("_", "").isalnum():
        raise TemplateError(f"no template {template!r}")
    folder = TEMPLATE_ROOT / language
    try:
        text = (folder / f"{template}.txt").read_text(encoding="utf-8")
        body = (folder / f"{template}.html").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"no template {template!r} in {language!r}") from None
    first_line, _, rest = text.partition("\n")
    if not first_line.startswith("Subject:"):
        raise TemplateError(f"template {template!r} in {language!r} does not start with a Subject: line")
    return _Source(Template(first_line.removeprefix("Subject:").strip()), Template(rest.lstrip("\n")), Template(body))


def _shown(name: str, value: Any) -> str:
    if name.endswith("_at") and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "" if value is None else str(value)
