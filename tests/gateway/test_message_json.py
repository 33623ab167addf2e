"""The gateway's JSON encoder (gateway/message_json.py) answers exactly what json_format.MessageToDict
answers, key order included, or fails where json_format fails: for every message of Tenantry's contracts
and for test messages holding every kind of field, with proto names and with json_names."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory, struct_pb2
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.message_json import MessageJson
from tests.gateway.foreign import build_set
from tests.gateway.test_transcoding_properties import CONTRACTS
from tests.request_strategies import messages

NAMES = ("kinds", "closed")
ENCODERS = {json_names: MessageJson(json_names=json_names) for json_names in (False, True)}


def _test_classes() -> dict[str, type[Message]]:
    with tempfile.TemporaryDirectory() as folder:
        built = build_set(Path(folder) / "json.binpb", *(f"tenantry/testing/json/v1/{name}.proto" for name in NAMES))
        files = descriptor_pb2.FileDescriptorSet.FromString(built.read_bytes())
    # The default pool, which holds the well-known types the strategies build (struct_pb2.Struct, say).
    pool = descriptor_pool.Default()
    for file in files.file:
        try:
            pool.FindFileByName(file.name)
        except KeyError:
            pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tenantry.testing.json.v1.{name}"))
        for name in ("Kinds", "Closed")
    }


TEST_CLASSES = _test_classes()
CONTRACT_CLASSES = sorted(
    {binding.rpc.response_class for binding in CONTRACTS.bindings}
    | {binding.rpc.request_class for binding in CONTRACTS.bindings},
    key=lambda message_class: message_class.DESCRIPTOR.full_name,
)
ALL_CLASSES = [*CONTRACT_CLASSES, *TEST_CLASSES.values()]


def _outcome(encode: Any, message: Message) -> tuple[str, str]:
    """What came out, as text (so that key order counts), or the kind of error."""
    try:
        return "document", json.dumps(encode(message))
    except Exception as error:  # the comparison is of what each raises
        return "error", type(error).__name__


def assert_same_as_json_format(message: Message) -> None:
    for json_names, encoder in ENCODERS.items():
        expected = _outcome(
            lambda m, proto_names=not json_names: json_format.MessageToDict(
                m, preserving_proto_field_name=proto_names, always_print_fields_with_no_presence=True
            ),
            message,
        )
        assert _outcome(encoder.document, message) == expected, (json_names, message)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ALL_CLASSES).flatmap(messages))
def test_every_message_encodes_as_json_format_does(message: Message) -> None:
    assert_same_as_json_format(message)


def test_empty_messages_print_every_field_without_presence() -> None:
    for message_class in ALL_CLASSES:
        assert_same_as_json_format(message_class())
    document = ENCODERS[False].document(TEST_CLASSES["Kinds"]())
    assert document["an_int64"] == "0" and document["floats"] == [] and document["by_flag"] == {}
    assert "maybe_int64" not in document and "child" not in document and "at" not in document


@pytest.mark.parametrize(
    "fields",
    [
        {"a_double": math.nan, "a_float": -math.inf, "floats": [0.1, math.inf, 3.4e38]},
        {"an_int64": -(2**63), "a_uint64": 2**64 - 1, "int64s": [0, 2**53 + 1]},
        {"shade": 7, "shades": [1, 99], "maybe_shade": 0},  # open enum: unknown numbers print as numbers
        {"some_bytes": b"\xff\x00\xfe", "byte_list": [b"", b"a"]},
        {"renamed_field": "x", "maybe_string": ""},
    ],
)
def test_awkward_values_encode_as_json_format_does(fields: dict[str, Any]) -> None:
    assert_same_as_json_format(TEST_CLASSES["Kinds"](**fields))


def test_what_json_format_refuses_is_refused_alike() -> None:
    kinds = TEST_CLASSES["Kinds"]
    out_of_range = kinds()
    out_of_range.at.seconds = 2**62
    not_finite = kinds(value=struct_pb2.Value(number_value=math.inf))
    unresolvable = kinds()
    unresolvable.any.type_url = "type.googleapis.com/no.such.Message"
    for message in (out_of_range, not_finite, unresolvable):
        assert_same_as_json_format(message)
        assert _outcome(ENCODERS[False].document, message)[0] == "error"


def test_maps_with_bool_and_integer_keys_and_message_values() -> None:
    kinds = TEST_CLASSES["Kinds"]
    message = kinds(by_int64={-5: "minus", 2**40: "big"}, by_uint32={3: 2, 4: 42})
    message.by_flag[True].a_string = "yes"
    message.by_flag[False].an_int64 = 9
    message.values["n"].number_value = 1.5
    message.values["l"].list_value.values.add().string_value = "x"
    assert_same_as_json_format(message)
    assert list(ENCODERS[False].document(message)["by_flag"]) == list(
        json_format.MessageToDict(message, preserving_proto_field_name=True)["by_flag"]
    )
