"""The route table skips templates whose leading literal segments a path lacks:
the answer is the same as trying every template's regular expression in turn."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.stack import ROOT
from gateway.descriptors import Contracts
from gateway.routes import RouteTable
from gateway.templates import parse

TABLE = RouteTable(Contracts([ROOT / "gen" / "tenantry.binpb"]).bindings)
LITERALS = sorted({part for binding in TABLE.bindings for part in binding.template.source[1:].split("/")} | {"x"})


# The same table with every prefix "/": each template's regular expression is tried.
UNFILTERED = RouteTable(
    [replace(binding, template=replace(binding.template, literal_prefix="/")) for binding in TABLE.bindings]
)


segment = st.one_of(st.sampled_from(LITERALS), st.sampled_from(["me", "a%2Fb", "7f1c", "items:search", "%41pi"]))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["GET", "POST", "PATCH", "DELETE", "HEAD"]), st.lists(segment, min_size=1, max_size=6))
def test_the_prefix_check_changes_no_answer(http_method: str, segments: list[str]) -> None:
    raw_path = "/" + "/".join(segments)
    assert TABLE.match(http_method, raw_path) == UNFILTERED.match(http_method, raw_path)


def test_each_templates_prefix_is_its_leading_literals() -> None:
    assert parse("/api/v1/tenants/me").literal_prefix == "/api/v1/tenants/me"
    assert parse("/api/v1/tenants/{id}").literal_prefix == "/api/v1/tenants"
    assert parse("/v1/files/{name=**}").literal_prefix == "/v1/files"
    assert parse("/v1/files/{name=**}").match("/v1/files") is not None  # "**" may match no segment at all
    assert parse("/v1/things:search").literal_prefix == "/v1/things"  # the verb is left to the expression
    assert parse("/{name=shelves/*}").literal_prefix == "/"
    assert all(binding.template.literal_prefix != "/" for binding in TABLE.bindings)
