"""Properties of the shared validators and the request check, over generated input.

Each property holds for every input: a validator either refuses with a field-named
InvalidArgument or returns something the database and bcrypt take as meant.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from tenantry.tenants.v1 import tenants_service_pb2

from kit.convert import from_timestamp
from kit.errors import InvalidArgument
from kit.interceptors.validation import (
    MAX_TIMESTAMP_SECONDS,
    MAX_VALUE_DEPTH,
    MIN_TIMESTAMP_SECONDS,
    check_request,
)
from kit.validation import PASSWORD_MAX_BYTES, PASSWORD_MIN_BYTES, normalize_email, validate_password, validate_text
from services.tenants.service import SLUG

PROPERTY = settings(max_examples=300, deadline=None)

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=30,
)


def _faults(value: Any, depth: int = 0) -> bool:
    """Whether a JSON-like value holds what the request check must refuse."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return depth >= MAX_VALUE_DEPTH or any("\x00" in key or _faults(item, depth + 1) for key, item in value.items())
    if isinstance(value, list):
        return depth >= MAX_VALUE_DEPTH or any(_faults(item, depth + 1) for item in value)
    return False


@PROPERTY
@given(st.text(max_size=300))
def test_a_normalized_email_is_stable_and_storable(raw: str) -> None:
    try:
        email = normalize_email("email", raw)
    except InvalidArgument as error:
        assert error.field == "email"
        return
    assert normalize_email("email", email) == email
    assert len(email) <= 254 and email.count("@") == 1
    assert not any(character.isspace() or character == "\x00" for character in email)


@PROPERTY
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_a_password_is_accepted_only_if_bcrypt_reads_all_of_it(password: str) -> None:
    size = len(password.encode())
    try:
        validate_password("password", password)
    except InvalidArgument as error:
        assert error.field == "password"
        assert "\x00" in password or not PASSWORD_MIN_BYTES <= size <= PASSWORD_MAX_BYTES
        return
    assert "\x00" not in password and PASSWORD_MIN_BYTES <= size <= PASSWORD_MAX_BYTES


@PROPERTY
@given(st.text(max_size=60))
def test_validated_text_has_no_nul_and_respects_its_bound(raw: str) -> None:
    try:
        text = validate_text("name", raw, maximum=20)
    except InvalidArgument as error:
        assert error.field == "name"
        assert "\x00" in raw or not raw.strip() or len(raw.strip()) > 20
        return
    assert "\x00" not in text and 0 < len(text) <= 20 and text == text.strip()


@PROPERTY
@given(st.from_regex(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", fullmatch=True) | st.text(max_size=70))
def test_an_accepted_slug_has_no_line_break_or_uppercase(slug: str) -> None:
    if SLUG.fullmatch(slug):
        assert "\n" not in slug and 3 <= len(slug) <= 63 and slug == slug.lower()
        assert not slug.startswith("-") and not slug.endswith("-")


@PROPERTY
@given(json_values)
def test_the_request_check_refuses_exactly_the_settings_a_service_cannot_store(value: Any) -> None:
    request = tenants_service_pb2.UpdateMyTenantRequest()
    request.tenant.settings.update({"value": value})
    request.update_mask.paths.append("settings")
    try:
        check_request(request)
    except InvalidArgument as error:
        assert error.field.startswith("tenant.settings")
        assert _faults({"value": value})
        return
    assert not _faults({"value": value})


@PROPERTY
@given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1))
def test_a_timestamp_passes_only_if_it_converts_to_a_datetime(seconds: int, nanos: int) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    in_range = MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS and 0 <= nanos <= 999_999_999
    try:
        check_request(stamp)
    except InvalidArgument:
        assert not in_range
        return
    assert in_range
    assert from_timestamp(stamp).year >= 1


@pytest.mark.parametrize("text", ["abc\n", "abc\r\n", "a" * 64 + "\n"])
def test_a_slug_followed_by_a_line_break_never_matches(text: str) -> None:
    assert SLUG.fullmatch(text) is None
