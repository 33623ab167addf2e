"""The route table: which binding serves a method and path, or why none does."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.descriptors import Binding


@dataclass(frozen=True)
class Matched:
    binding: Binding
    path_values: dict[tuple[str, ...], str]


@dataclass(frozen=True)
class MethodNotAllowed:
    allowed: tuple[str, ...]


class RouteTable:
    def __init__(self, bindings: list[Binding]) -> None:
        self.bindings = sorted(bindings, key=lambda binding: binding.template.specificity)

    def match(self, http_method: str, raw_path: str) -> Matched | MethodNotAllowed | None:
        allowed: list[str] = []
        for binding in self.bindings:
            values = binding.template.match(raw_path)
            if values is None:
                continue
            if binding.http_method == http_method or (http_method == "HEAD" and binding.http_method == "GET"):
                return Matched(binding, values)
            allowed.append(binding.http_method)
        if allowed:
            return MethodNotAllowed(tuple(sorted(set(allowed))))
        return None
