"""The route table: which binding serves a method and path, or why none does."""

from __future__ import annotations

import re
from collections.abc import Iterable
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
            if not raw_path.startswith(binding.template.literal_prefix):
                continue  # cheaper than the regular expression, and as certain
            values = binding.template.match(raw_path)
            if values is None:
                continue
            if binding.http_method == http_method or (http_method == "HEAD" and binding.http_method == "GET"):
                return Matched(binding, values)
            allowed.append(binding.http_method)
        if allowed:
            return MethodNotAllowed(tuple(sorted(set(allowed))))
        return None


_VARIABLE = re.compile(r"\{[^}=]*(?:=([^}]*))?\}")


def route_shape(binding: Binding) -> tuple[str, tuple[str, ...], str | None]:
    """What the binding matches, whatever its variables are called:
    `GET /v1/{name=shelves/*}` and `GET /v1/shelves/{id}` have one shape."""
    template = binding.template
    body = template.source[1:]
    if template.verb:
        body = body.removesuffix(":" + template.verb)
    segments = _VARIABLE.sub(lambda found: found.group(1) or "*", body).split("/")
    return binding.http_method, tuple(segments), template.verb


def check_no_clashes(bindings: list[Binding], reserved_paths: Iterable[str] = ()) -> None:
    """Two bindings of one shape would leave one unreachable, whichever the
    table tried first: refused at start-up, naming both RPCs. So is a route on
    a path the gateway answers itself (/health, /openapi.json, /docs/...)."""
    seen: dict[tuple[str, tuple[str, ...], str | None], Binding] = {}
    reserved = {("GET", tuple(path[1:].split("/")), None) for path in reserved_paths}
    for binding in bindings:
        shape = route_shape(binding)
        if shape in reserved or (shape[1][0] == "docs" and len(shape[1]) > 1):
            raise ValueError(
                f"route {binding.http_method} {binding.template.source} of {binding.rpc.method.full_name} "
                "is a path the gateway serves itself"
            )
        earlier = seen.setdefault(shape, binding)
        if earlier is not binding:
            raise ValueError(
                f"route clash: {binding.http_method} {earlier.template.source} of {earlier.rpc.method.full_name} "
                f"and {binding.http_method} {binding.template.source} of {binding.rpc.method.full_name} "
                "match the same requests"
            )
