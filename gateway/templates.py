"""Path templates of google.api.http (google/api/http.proto), parsed and matched.

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

A template compiles to a regular expression over the raw (still
percent-encoded) path; captured values are decoded afterwards, the way the
spec asks: fully for single-segment variables ("a%2Fb" is "a/b"), keeping "%2F"
as it is for multi-segment ones ("shelves/1/books/a%2Fb"). That is Envoy's and
grpc-gateway's UnescapingModeAllExceptReserved, the reference behaviour.

A path that matches no template that way is tried once more with each "%2F"
inside a multi-segment variable read as "/": OpenAPI clients know
`{book.name=shelves/*/books/*}` as one parameter and send
"shelves%2F1%2Fbooks%2F2". The value is then decoded in full, as grpc-gateway's
UnescapingModeAllCharacters (and its default mode) decode it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENCODED_SLASH = re.compile("%2[Ff]")
_LITERAL = re.compile(r"[A-Za-z0-9._~!$&'()+,;=@%-]+")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Variable:
    field_path: tuple[str, ...]
    # The sub-template the variable spans, e.g. ("shelves", "*", "books", "*").
    segments: tuple[str, ...]

    @property
    def multi_segment(self) -> bool:
        return len(self.segments) > 1 or "**" in self.segments


@dataclass(frozen=True)
class PathTemplate:
    source: str
    regex: re.Pattern[str]
    variables: tuple[Variable, ...]
    verb: str | None
    literal_count: int
    wildcard_count: int
    openapi_path: str = field(compare=False)
    # The template's leading literal segments ("/api/v1/tenants" of "/api/v1/tenants/{id}"): a path
    # not starting with them cannot match, which the route table checks before any regular expression.
    literal_prefix: str = field(default="/", compare=False)

    def match(self, raw_path: str) -> dict[tuple[str, ...], str] | None:
        found = self.regex.fullmatch(raw_path)
        if found is not None:
            return {
                variable.field_path: _decode(found.group(f"v{index}"), keep_slashes=variable.multi_segment)
                for index, variable in enumerate(self.variables)
            }
        if not any(variable.multi_segment for variable in self.variables) or not _ENCODED_SLASH.search(raw_path):
            return None
        return self._match_encoded_slashes(raw_path)

    def _match_encoded_slashes(self, raw_path: str) -> dict[tuple[str, ...], str] | None:
        """The match with every %2F read as '/', kept only if each such slash fell inside a
        multi-segment variable (never a literal, a single-segment variable or the verb)."""
        pieces = _ENCODED_SLASH.split(raw_path)
        slashes, position = [], 0
        for piece in pieces[:-1]:
            position += len(piece)
            slashes.append(position)
            position += 1
        found = self.regex.fullmatch("/".join(pieces))
        if found is None:
            return None
        spans = [found.span(f"v{i}") for i, variable in enumerate(self.variables) if variable.multi_segment]
        if not all(any(start <= slash < end for start, end in spans) for slash in slashes):
            return None
        return {
            variable.field_path: _decode(found.group(f"v{index}"), keep_slashes=False)
            for index, variable in enumerate(self.variables)
        }

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: verbs first, then fewer wildcards, then more literal segments."""
        return (0 if self.verb else 1, self.wildcard_count, -self.literal_count)


def _decode(raw: str | None, *, keep_slashes: bool) -> str:
    if raw is None:
        return ""  # a '**' variable that matched no segment (its group did not take part)
    if keep_slashes:
        raw = re.sub("%2[Ff]", "%252F", raw)
    return unquote(raw)


def _split_top_level(text: str) -> list[str]:
    """Splits on '/' outside of {...}."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise TemplateError("unbalanced '}'")
        if char == "/" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise TemplateError("unbalanced '{'")
    parts.append(current)
    return parts


def _segment_regex(segment: str) -> str:
    if segment == "*":
        return "[^/]+"
    if segment == "**":
        return _ZERO_OR_MORE_MARK + ".*"
    if not _LITERAL.fullmatch(segment):
        raise TemplateError(f"invalid literal segment {segment!r}")
    return re.escape(segment)


# Marks a piece that may match no segment at all, along with the '/' before it
# (http.proto: "**" matches zero or more segments, so /v1/files matches /v1/files/{name=**}).
_ZERO_OR_MORE_MARK = "\x00"


def _join(pieces: list[str]) -> str:
    joined = pieces[0].removeprefix(_ZERO_OR_MORE_MARK)
    for piece in pieces[1:]:
        if piece.startswith(_ZERO_OR_MORE_MARK):
            joined += f"(?:/{piece.removeprefix(_ZERO_OR_MORE_MARK)})?"
        else:
            joined += "/" + piece
    return joined


def parse(template: str) -> PathTemplate:
    if not template.startswith("/"):
        raise TemplateError("must start with '/'")
    body, verb = template[1:], None
    last = body.rsplit("/", 1)[-1]
    if ":" in last and "}" not in last.split(":", 1)[1]:
        body, verb = body.rsplit(":", 1)
        if not _LITERAL.fullmatch(verb):
            raise TemplateError(f"invalid verb {verb!r}")
    pieces: list[str] = []
    variables: list[Variable] = []
    openapi: list[str] = []
    literals = wildcards = 0
    segments = _split_top_level(body)
    for position, segment in enumerate(segments):
        if not segment:
            raise TemplateError("empty segment")
        if segment.startswith("{"):
            if not segment.endswith("}"):
                raise TemplateError(f"invalid variable {segment!r}")
            name, _, inner = segment[1:-1].partition("=")
            path = tuple(name.split("."))
            if not all(_IDENT.fullmatch(part) for part in path):
                raise TemplateError(f"invalid field path {name!r}")
            sub = tuple(inner.split("/")) if inner else ("*",)
            if "**" in sub[:-1] or ("**" in sub and position != len(segments) - 1):
                raise TemplateError("'**' must be the last segment")
            wildcards += sum(part in ("*", "**") for part in sub)
            literals += sum(part not in ("*", "**") for part in sub)
            group = f"(?P<v{len(variables)}>{_join([_segment_regex(part) for part in sub])})"
            pieces.append(f"{_ZERO_OR_MORE_MARK}{group}" if sub == ("**",) else group)
            variables.append(Variable(path, sub))
            openapi.append("{" + name + "}")
        else:
            if segment == "**" and position != len(segments) - 1:
                raise TemplateError("'**' must be the last segment")
            if segment in ("*", "**"):
                wildcards += 1
            else:
                literals += 1
            pieces.append(_segment_regex(segment))
            openapi.append(segment)
    leading: list[str] = []
    for segment in segments:
        if segment.startswith("{") or segment in ("*", "**"):
            break
        leading.append(segment)
    suffix = re.escape(":" + verb) if verb else ""
    regex = re.compile(_join(["", *pieces]) + suffix)
    return PathTemplate(
        source=template,
        regex=regex,
        variables=tuple(variables),
        verb=verb,
        literal_count=literals,
        wildcard_count=wildcards,
        openapi_path="/" + "/".join(openapi) + (f":{verb}" if verb else ""),
        literal_prefix="/" + "/".join(leading),
    )
