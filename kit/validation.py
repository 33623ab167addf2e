"""Input rules shared by more than one service, with errors that name the field."""

from __future__ import annotations

import re
import unicodedata

from kit.errors import InvalidArgument

# bcrypt reads at most 72 bytes: a longer password is refused rather than
# silently truncated, so that two different passwords never hash the same.
PASSWORD_MIN_BYTES = 8
PASSWORD_MAX_BYTES = 72

# Deliberately loose (RFC 5322 is not a regular language): one @, a dot in
# the domain, no spaces. Deliverability is for an invitation mail to prove.
# Matched with fullmatch: `$` would also accept a trailing newline.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


def normalize_email(field: str, email: str) -> str:
    """NFKC, then case folding (NFKC again, as Unicode's NFKC_Casefold does): look-alikes
    written with compatibility characters (fullwidth letters, ligatures) or other
    cases are one address, so they are one account."""
    email = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).casefold()).strip()
    if not email:
        raise InvalidArgument(field, "is required")
    if len(email) > 254 or not _EMAIL.fullmatch(email) or not email.isprintable():
        raise InvalidArgument(field, "is not a valid email address")
    return email


def validate_password(field: str, password: str) -> None:
    # bcrypt stops at the first NUL: "abc\0anything" would hash as "abc".
    if "\x00" in password:
        raise InvalidArgument(field, "must not contain NUL characters")
    size = len(password.encode("utf-8"))
    if size < PASSWORD_MIN_BYTES:
        raise InvalidArgument(field, f"must be at least {PASSWORD_MIN_BYTES} bytes")
    if size > PASSWORD_MAX_BYTES:
        raise InvalidArgument(field, f"must be at most {PASSWORD_MAX_BYTES} bytes (bcrypt's limit)")


def validate_text(field: str, value: str, *, maximum: int, required: bool = True) -> str:
    value = value.strip()
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain NUL characters")
    if required and not value:
        raise InvalidArgument(field, "is required")
    if len(value) > maximum:
        raise InvalidArgument(field, f"must be at most {maximum} characters")
    return value


def display_name(field: str, value: str, *, maximum: int = 100) -> str | None:
    """A name shown to people, e.g. in an email's From header: one line of printable text, or None when empty."""
    value = value.strip()
    if not value:
        return None
    if len(value) > maximum:
        raise InvalidArgument(field, f"must be at most {maximum} characters")
    if any(unicodedata.category(character).startswith("C") for character in value):
        raise InvalidArgument(field, "must not contain control or format characters")
    return value
