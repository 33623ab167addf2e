"""kit.convert.BuiltFrom: a message built from a cached object is reused only for that very object."""

from __future__ import annotations

from kit.convert import BuiltFrom


class Row:
    def __init__(self, name: str) -> None:
        self.name = name


def test_the_message_is_reused_for_the_same_object_and_rebuilt_for_a_new_one() -> None:
    built: list[str] = []

    def build(row: Row) -> dict[str, str]:
        built.append(row.name)
        return {"name": row.name}

    messages = BuiltFrom(build, limit=10)
    cached = Row("before")
    first = messages.message("tenant-1", cached)
    assert messages.message("tenant-1", cached) is first
    # The cache handed back another object under the same key (the row changed): built anew.
    changed = messages.message("tenant-1", Row("after"))
    assert changed == {"name": "after"}
    assert built == ["before", "after"]


def test_at_most_limit_messages_are_kept_the_oldest_going_first() -> None:
    built: list[str] = []
    messages = BuiltFrom(lambda row: built.append(row.name) or row.name, limit=2)
    rows = {key: Row(key) for key in ("a", "b", "c")}
    for key in ("a", "b", "c"):
        messages.message(key, rows[key])
    messages.message("c", rows["c"])
    messages.message("a", rows["a"])
    assert built == ["a", "b", "c", "a"]
