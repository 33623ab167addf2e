"""The lines of an export file, NDJSON or CSV, both from the contract's JSON mapping.

Every line is an AuditExportLine; an event travels as the AuditEvent message,
so a field added to the event appears in exports (as a CSV column too) with
no change here. Reading a line back gives the same messages, which is what
the offline verifier hashes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from tenantry.audit.v1 import audit_export_service_pb2, audit_pb2

NDJSON, CSV = "ndjson", "csv"
FORMATS = (NDJSON, CSV)
CONTENT_TYPES = {NDJSON: "application/x-ndjson", CSV: "text/csv; charset=utf-8"}

Line = audit_export_service_pb2.AuditExportLine

_EVENT_FIELDS = list(audit_pb2.AuditEvent.DESCRIPTOR.fields)
_CSV_COLUMNS = ["line", *(field.name for field in _EVENT_FIELDS), "chain_hash", "chain_format", "statement"]
# Fields whose JSON mapping is a string (int64 and enums included): a CSV cell holds them as they are.
_STRING_TYPES = {
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_BYTES,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
    FieldDescriptor.TYPE_ENUM,
}
_STRING_MESSAGES = {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}


class UnreadableLine(ValueError):
    """A line that is no AuditExportLine."""


def _document(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _is_text(field: FieldDescriptor) -> bool:
    if field.is_repeated:
        return False
    if field.message_type is not None:
        return field.message_type.full_name in _STRING_MESSAGES
    return field.type in _STRING_TYPES


class Encoder:
    """Turns lines into bytes of one format; the CSV header comes before the first line."""

    def __init__(self, format: str) -> None:
        self.format = format
        self._header_due = format == CSV

    def encode(self, line: Line) -> bytes:
        if self.format == NDJSON:
            return json.dumps(_document(line), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self._header_due:
            writer.writerow(_CSV_COLUMNS)
            self._header_due = False
        writer.writerow(self._row(line))
        return buffer.getvalue().encode()

    @staticmethod
    def _row(line: Line) -> list[str]:
        kind: str = line.WhichOneof("line") or ""
        cells: dict[str, str] = {"line": kind}
        if kind == "event":
            for name, value in _document(line.event).items():
                cells[name] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            cells["chain_hash"] = line.chain_hash
            cells["chain_format"] = str(line.chain_format)
        else:
            cells["statement"] = json.dumps(_document(getattr(line, kind)), ensure_ascii=False, separators=(",", ":"))
        return [cells.get(column, "") for column in _CSV_COLUMNS]


def read_lines(file: io.TextIOBase, format: str) -> Iterator[tuple[int, Line]]:
    """Each line of a file with its line number (from 1); UnreadableLine names what is wrong."""
    if format == NDJSON:
        for number, text in enumerate(file, start=1):
            yield number, _parse(number, json.loads, text)
        return
    reader = csv.reader(file)
    header = next(reader, None)
    if header is None:
        return
    known = {field.name: field for field in _EVENT_FIELDS}
    for row in reader:
        number = reader.line_num
        if len(row) != len(header):
            raise UnreadableLine(f"line {number}: {len(row)} columns, the header has {len(header)}")
        yield number, _parse(number, _from_row, dict(zip(header, row, strict=True)), known)


def _from_row(cells: dict[str, str], known: dict[str, FieldDescriptor]) -> dict[str, Any]:
    kind = cells.get("line", "")
    if kind != "event":
        return {kind: json.loads(cells.get("statement") or "{}")}
    event: dict[str, Any] = {}
    for name, value in cells.items():
        field = known.get(name)
        if field is None or value == "":
            continue
        event[name] = value if _is_text(field) else json.loads(value)
    return {"event": event, "chain_hash": cells.get("chain_hash", ""), "chain_format": cells.get("chain_format") or 0}


def _parse(number: int, document: Callable[..., Any], *args: Any) -> Line:
    try:
        return json_format.ParseDict(document(*args), Line())
    except (ValueError, json_format.ParseError) as error:
        problem = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise UnreadableLine(f"line {number}: not an export line ({problem})") from None
