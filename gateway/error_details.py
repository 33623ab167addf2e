"""An upstream's rich error (google.rpc.Status in `grpc-status-details-bin`) as the JSON body's `details`.

Each detail is an `Any`, written as protobuf JSON writes an Any: `{"@type": url, ...fields}`, as
grpc-gateway does. Its type is looked up in the loaded contracts, then among the types this
process knows (google.rpc's error details among them). A type found nowhere is passed on as
`{"@type": url, "value": base64}`, and a trailer that does not parse, or whose code is not the
call's, is dropped: whatever an upstream writes there, the answer is never a 500. `DebugInfo`
(stack entries, meant for the server's own operators) is dropped too: no stack trace leaves the edge.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pool, json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

log = logging.getLogger(__name__)

DETAILS_TRAILER = "grpc-status-details-bin"
_RETRY_INFO = error_details_pb2.RetryInfo.DESCRIPTOR.full_name
_WITHHELD = {error_details_pb2.DebugInfo.DESCRIPTOR.full_name}


@dataclass(frozen=True)
class RichStatus:
    """What the gateway takes from an upstream's google.rpc.Status."""

    details: list[dict[str, Any]] = field(default_factory=list)
    # Whole seconds to wait, from a RetryInfo detail (rounded up).
    retry_after: int | None = None


class DetailDecoder:
    """Turns `Any` details into JSON, by the contracts' descriptors or this process's own."""

    def __init__(self, contracts_pool: descriptor_pool.DescriptorPool | None = None, *, json_names: bool = False):
        self._pools = [pool for pool in (contracts_pool, descriptor_pool.Default()) if pool is not None]
        self._json_names = json_names

    def from_trailers(self, code: grpc.StatusCode, trailers: Sequence[tuple[str, Any]] | None) -> RichStatus:
        raw = next((value for key, value in trailers or () if key == DETAILS_TRAILER), None)
        if not isinstance(raw, bytes):
            return RichStatus()
        try:
            status = status_pb2.Status.FromString(raw)
        except DecodeError:
            log.warning("an upstream sent a grpc-status-details-bin that is not a google.rpc.Status; dropped")
            return RichStatus()
        if status.code != code.value[0]:
            # gRPC requires them to agree; a Status for another code would contradict the answer.
            log.warning(
                "an upstream's grpc-status-details-bin has code %d, not the call's %s; dropped", status.code, code.name
            )
            return RichStatus()
        shown = [detail for detail in status.details if _type_name(detail) not in _WITHHELD]
        return RichStatus([self.to_json(detail) for detail in shown], _retry_after(status.details))

    def bad_request(self, field: str, description: str) -> dict[str, Any]:
        """A BadRequest detail for a 400 of the gateway's own, in the same JSON as an upstream's."""
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        return self.to_json(detail)

    def to_json(self, detail: any_pb2.Any) -> dict[str, Any]:
        for pool in self._pools:
            try:
                document = json_format.MessageToDict(
                    detail, preserving_proto_field_name=not self._json_names, descriptor_pool=pool
                )
            except Exception:  # an upstream's bytes: not in this pool, or not the named type; try the next
                continue
            if isinstance(document, dict) and "@type" in document:  # an empty Any writes as {}
                return document
        return {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode("ascii")}


def edge_details(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The gateway's own refusals (kit's google.rpc details) in the JSON an upstream's get."""
    packed = []
    for message in messages:
        detail = any_pb2.Any()
        detail.Pack(message)
        packed.append(_EDGE_DECODER.to_json(detail))
    return packed


def _type_name(detail: any_pb2.Any) -> str:
    return detail.type_url.rsplit("/", 1)[-1]


def _retry_after(details: Sequence[any_pb2.Any]) -> int | None:
    for detail in details:
        if _type_name(detail) != _RETRY_INFO:
            continue
        info = error_details_pb2.RetryInfo()
        try:
            detail.Unpack(info)
        except DecodeError:
            return None
        delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
        return max(0, math.ceil(delay))
    return None


_EDGE_DECODER = DetailDecoder()
