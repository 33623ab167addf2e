"""Properties of the access policy and of route shapes, over generated names and paths."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access_policy import DEFAULT_ACCESS, PolicyAccess, parse_access_policy
from gateway.templates import parse

PROPERTY = settings(max_examples=150, deadline=None)

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
names = st.lists(identifiers, min_size=1, max_size=5).map(".".join)
accesses = st.sampled_from(list(PolicyAccess))
segments = st.from_regex(r"[A-Za-z0-9._~-]{1,8}", fullmatch=True)


@PROPERTY
@given(entries=st.dictionaries(names, accesses, max_size=6), method=names)
def test_the_longest_entry_naming_the_method_decides_else_authenticated(
    entries: dict[str, PolicyAccess], method: str
) -> None:
    policy = parse_access_policy(";".join(f"{name}={access.value}" for name, access in entries.items()))
    naming = [name for name in entries if method == name or method.startswith(name + ".")]
    expected = entries[max(naming, key=len)] if naming else DEFAULT_ACCESS
    assert policy.access_for(method) == expected


@PROPERTY
@given(name=names, prefix=names)
def test_an_entry_never_names_a_method_that_merely_shares_its_first_letters(name: str, prefix: str) -> None:
    policy = parse_access_policy(f"{prefix}=deny")
    method = f"{prefix}x.{name}"  # "acme" must not cover "acmex.…"
    assert policy.access_for(method) == DEFAULT_ACCESS


@PROPERTY
@given(parts=st.lists(segments, max_size=6))
def test_double_star_takes_any_number_of_segments_including_none(parts: list[str]) -> None:
    template = parse("/v1/files/{name=**}")
    path = "/v1/files" + "".join(f"/{part}" for part in parts)
    assert template.match(path) == {("name",): "/".join(parts)}
    assert template.match("/v1/filesx") is None


@PROPERTY
@given(parts=st.lists(segments, max_size=4), verb=st.from_regex(r"[a-z]{1,6}", fullmatch=True))
def test_double_star_before_a_verb_takes_any_number_of_segments(parts: list[str], verb: str) -> None:
    template = parse(f"/v1/{{name=shelves/**}}:{verb}")
    path = "/v1/shelves" + "".join(f"/{part}" for part in parts) + f":{verb}"
    assert template.match(path) == {("name",): "/".join(["shelves", *parts])}
