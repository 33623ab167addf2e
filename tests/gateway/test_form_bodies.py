"""Form bodies (RFC 6749's token endpoint): every field comes back exactly; nothing else gets through."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tenantry.auth.v1 import service_accounts_service_pb2 as pb

from gateway.form_bodies import form_document, is_form
from gateway.status import GatewayError

DESCRIPTOR = pb.CreateTokenRequest.DESCRIPTOR
FIELDS = [field.name for field in DESCRIPTOR.fields]
# Text a form can carry: any Unicode scalar value (no lone surrogates, which UTF-8 cannot encode).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=50)


@given(st.dictionaries(st.sampled_from(FIELDS), TEXT))
def test_every_field_comes_back_exactly(values: dict[str, str]) -> None:
    body = urlencode(values).encode()
    if body.lstrip().startswith(b"{"):
        return  # read as JSON by design
    assert form_document(body, DESCRIPTOR, "*") == values


@given(st.binary(max_size=200))
def test_any_bytes_are_a_document_or_a_400(body: bytes) -> None:
    try:
        document = form_document(body, DESCRIPTOR, "*")
    except GatewayError as error:
        assert error.http_status == 400
    else:
        assert set(document) <= set(FIELDS)


def test_a_repeated_parameter_and_a_json_only_method_are_refused() -> None:
    with pytest.raises(GatewayError, match="more than once"):
        form_document(b"scope=a&scope=b", DESCRIPTOR, "*")
    with pytest.raises(GatewayError, match="takes a JSON body"):
        form_document(b"scope=a", DESCRIPTOR, "owner")


def test_only_a_form_that_is_no_json_object_is_read_as_a_form() -> None:
    assert is_form("application/x-www-form-urlencoded; charset=utf-8", b"grant_type=client_credentials")
    assert not is_form("application/x-www-form-urlencoded", b'  {"grant_type": "client_credentials"}')
    assert not is_form("application/json", b"grant_type=client_credentials")
