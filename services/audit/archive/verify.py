"""Offline verification of an export or archive file: its chain links and its two signed checkpoints.

Each event is hashed again with the audit service's own code (`chain_values`,
the stored values the event carries, in the chain format its line names, and
`chain.link`), so the file verifies exactly as the trail does, for events of
either chain format. What it proves: the events
form the chain stretch between the start and end checkpoints, unchanged, none
added, removed or reordered, given the chain key and the service's public key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tenantry.audit.v1 import audit_pb2

from kit.convert import from_timestamp
from kit.db import PLATFORM_SCOPE
from kit.errors import DomainError
from services.audit import chain
from services.audit.archive.lines import Line
from services.audit.chain import ChainLink
from services.audit.checkpoints import signed_payload
from services.audit.event_model import chain_values


@dataclass
class FileCheck:
    """What a file holds, or the first line that is wrong (ok False, line > 0 when a line is to blame)."""

    ok: bool = False
    problem: str = ""
    line: int = 0
    scope: str = ""
    events: int = 0
    first: ChainLink | None = None
    last: ChainLink | None = None
    key_id: str = ""
    first_event_hash: bytes = b""
    notes: list[str] = field(default_factory=list)


class _Bad(Exception):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


def _link_of(checkpoint: audit_pb2.AuditCheckpoint, number: int) -> ChainLink:
    try:
        return ChainLink(checkpoint.sequence, bytes.fromhex(checkpoint.head_hash))
    except ValueError:
        raise _Bad(number, "its checkpoint's head_hash is not hex") from None


def _signed(checkpoint: audit_pb2.AuditCheckpoint, key: Ed25519PublicKey) -> bool:
    payload = signed_payload(
        checkpoint.scope,
        checkpoint.sequence,
        bytes.fromhex(checkpoint.head_hash),
        from_timestamp(checkpoint.created_at),
    )
    try:
        key.verify(checkpoint.signature, payload)
    except InvalidSignature:
        return False
    return True


def verify_file(lines: Iterable[tuple[int, Line]], chain_key: bytes, trusted_key: bytes | None = None) -> FileCheck:
    """Checks every line in order; stops at the first problem (ValueError from lines counts as one)."""
    result = FileCheck()
    try:
        _verify(iter(lines), chain_key, trusted_key, result)
    except _Bad as bad:
        result.ok, result.line, result.problem = False, bad.line, bad.problem
    except ValueError as error:
        result.ok, result.problem = False, str(error)
    return result


def _verify(lines: Iterable[tuple[int, Line]], chain_key: bytes, trusted_key: bytes | None, result: FileCheck) -> None:
    iterator = iter(lines)
    opened = next(iterator, None)
    if opened is None or opened[1].WhichOneof("line") != "start":
        raise _Bad(1, "the file does not open with its start checkpoint")
    start = opened[1].start
    result.scope = start.scope
    result.first = previous = _link_of(start, opened[0])
    tenant = "" if start.scope == PLATFORM_SCOPE else start.scope
    for number, line in iterator:
        kind = line.WhichOneof("line")
        if kind == "end":
            _check_end(number, line, start, previous, result, trusted_key)
            extra = next(iterator, None)
            if extra is not None:
                raise _Bad(extra[0], "a line after the end line")
            result.ok = True
            return
        if kind != "event":
            raise _Bad(number, f"a {kind or 'blank'} line among the events")
        event, expected = line.event, previous.sequence + 1
        if event.sequence != expected:
            raise _Bad(number, f"event {event.id} has sequence {event.sequence}, expected {expected}")
        if event.tenant_id != tenant:
            raise _Bad(number, f"event {event.id} belongs to another trail than {start.scope}")
        try:
            computed = chain.link(chain_key, previous.chain_hash, chain_values(event, line.chain_format), expected)
        except (DomainError, ValueError, KeyError) as error:
            raise _Bad(number, f"event {event.id} cannot be hashed ({error})") from None
        if not hmac.compare_digest(computed, bytes.fromhex(line.chain_hash or "")):
            raise _Bad(number, f"event {event.id} (sequence {expected}) does not match its chain hash")
        if result.events == 0:
            result.first_event_hash = computed
        previous = ChainLink(expected, computed)
        result.events += 1
    raise _Bad(0, "the file ends without its end line (truncated)")


def _check_end(
    number: int,
    line: Line,
    start: audit_pb2.AuditCheckpoint,
    last: ChainLink,
    result: FileCheck,
    trusted_key: bytes | None,
) -> None:
    end = line.end
    checkpoint, public_key = end.checkpoint, end.checkpoint_key.public_key
    if end.events != result.events:
        raise _Bad(number, f"the end line counts {end.events} events, the file has {result.events}")
    if checkpoint.scope != start.scope:
        raise _Bad(number, "the end checkpoint is of another trail than the start")
    if _link_of(checkpoint, number) != last:
        raise _Bad(number, f"the end checkpoint (sequence {checkpoint.sequence}) is not the last event's link")
    if trusted_key is not None and not hmac.compare_digest(public_key, trusted_key):
        raise _Bad(number, "the checkpoints are signed by another key than the trusted one")
    if len(public_key) != 32 or hashlib.sha256(public_key).hexdigest()[:16] != end.checkpoint_key.key_id:
        raise _Bad(number, "the end line's public key does not match its key id")
    key = Ed25519PublicKey.from_public_bytes(public_key)
    for name, signed in (("start", start), ("end", checkpoint)):
        if signed.key_id != end.checkpoint_key.key_id or not _signed(signed, key):
            raise _Bad(1 if name == "start" else number, f"the {name} checkpoint's signature does not verify")
    result.last, result.key_id = last, end.checkpoint_key.key_id
    if trusted_key is None:
        result.notes.append(
            f"signatures checked with the key the file carries (key id {result.key_id});"
            " pass --public-key to require the audit service's own key"
        )
