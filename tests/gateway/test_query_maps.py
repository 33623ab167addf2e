"""Map fields in the query, as grpc-gateway writes them: `labels[key]=value`, values typed by the map."""

from __future__ import annotations

import pytest
import requests


def test_map_entries_in_the_query_with_typed_values(echo_gateway: str) -> None:
    reply = requests.get(
        f"{echo_gateway}/v1/echo/a",
        params=[
            ("labels[env]", "prod"),
            ("labels[team]", "core"),
            ("labels[]", "empty key"),
            ("sizes[7]", "9007199254740993"),
            ("sizes[-1]", "0"),
            ("colors[sky]", "COLOR_BLUE"),
            ("colors[rose]", "1"),
        ],
    )
    assert reply.status_code == 200, reply.text
    echoed = reply.json()["request"]
    assert echoed["labels"] == {"env": "prod", "team": "core", "": "empty key"}
    assert echoed["sizes"] == {"7": "9007199254740993", "-1": "0"}
    assert echoed["colors"] == {"sky": "COLOR_BLUE", "rose": "COLOR_RED"}


def test_a_key_may_hold_any_character(echo_gateway: str) -> None:
    key = "a]b[c=d&e/f ü"
    reply = requests.get(f"{echo_gateway}/v1/echo/a", params={f"labels[{key}]": "v"})
    assert reply.json()["request"]["labels"] == {key: "v"}


@pytest.mark.parametrize(
    ("parameter", "value", "fragment"),
    [
        ("sizes[seven]", "1", "'sizes[seven]': the key must be an integer from -2147483648 to 2147483647"),
        ("sizes[2147483648]", "1", "'sizes[2147483648]': the key must be an integer"),
        ("sizes[1.5]", "1", "'sizes[1.5]'"),
        ("sizes[1]", "many", "sizes"),
        ("colors[x]", "COLOR_GREEN", "colors"),
        ("books_by_flag[maybe]", "x", "'books_by_flag[maybe]': the key must be true or false"),
        ("books_by_flag[true]", "x", "a message cannot be given as one value"),
        ("labels[a", "v", "'labels[a': a map entry is written field[key]=value"),
        ("[a]", "v", "a map entry is written field[key]=value"),
        ("tags[a]", "v", "'tags' is not a map field"),
        ("nope[a]", "v", "'nope': no such field"),
        ("labels", "v", "'labels': a map entry is written labels[key]=value"),
    ],
)
def test_a_bad_map_entry_is_400_naming_it(echo_gateway: str, parameter: str, value: str, fragment: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/echo/a", params={parameter: value})
    assert reply.status_code == 400, reply.text
    assert reply.json()["code"] == 3 and fragment in reply.json()["message"]


def test_the_same_key_twice_is_400(echo_gateway: str) -> None:
    reply = requests.get(f"{echo_gateway}/v1/echo/a", params=[("labels[k]", "1"), ("labels[k]", "2")])
    assert reply.status_code == 400 and "'labels[k]' is given more than once" in reply.json()["message"]


def test_a_map_in_the_body_cannot_be_added_to_from_the_query(echo_gateway: str) -> None:
    reply = requests.post(f"{echo_gateway}/v1/echo", params={"labels[k]": "v"}, json={"labels": {"a": "b"}})
    assert reply.status_code == 400 and "labels[k]" in reply.json()["message"]
