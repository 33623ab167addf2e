"""A month's archive on disk: one gzip-compressed export file per scope and a signed manifest.

    AUDIT_ARCHIVE_DIR/2026-01/<scope>.jsonl.gz   the scope's events of the month, as an export file
    AUDIT_ARCHIVE_DIR/2026-01/manifest.json      counts, first/last sequence and hash, SHA-256 of each file,
                                                 signed with the audit service's Ed25519 checkpoint key

Files are written under a temporary name, synced and renamed, so a crash
leaves no file that looks complete. Reading an archive back checks the
manifest's signature, each file's SHA-256, and each file's chain with the
offline verifier: what the retention run requires before it drops anything,
and what a restore requires before it loads anything.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.archive.lines import NDJSON, Encoder, Line
from services.audit.archive.verify_command import check_path
from services.audit.checkpoints import CheckpointKey

MANIFEST = "manifest.json"
PAYLOAD_HEADER = b"tenantry-audit-archive/v1\n"


class ArchiveProblem(Exception):
    """An archive that cannot be written or does not verify; the message says why."""


@dataclass(frozen=True)
class ScopeFile:
    scope: str
    file: str
    events: int
    first_sequence: int
    last_sequence: int
    previous_hash: str
    first_hash: str
    last_hash: str
    sha256: str


def month_name(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def month_dir(archive_dir: Path, month: date) -> Path:
    return archive_dir / month_name(month)


def _signed_bytes(body: dict[str, Any]) -> bytes:
    return PAYLOAD_HEADER + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _sync_rename(temporary: Path, final: Path) -> None:
    with temporary.open("rb") as file:
        os.fsync(file.fileno())
    temporary.replace(final)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


async def write_scope_file(directory: Path, scope: str, lines: AsyncIterator[Line]) -> Path:
    """Writes one scope's lines, compressed, under its final name once complete."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = directory / f"{scope}.jsonl.gz"
    temporary = directory / f".{scope}.jsonl.gz.partial"
    encoder = Encoder(NDJSON)
    with gzip.open(temporary, "wb") as file:
        async for line in lines:
            file.write(encoder.encode(line))
    _sync_rename(temporary, final)
    return final


def write_manifest(directory: Path, month: date, files: list[ScopeFile], key: CheckpointKey) -> None:
    body = {
        "format": "tenantry-audit-archive/v1",
        "month": month_name(month),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": [file.__dict__ for file in files],
    }
    document = {
        "manifest": body,
        "key_id": key.key_id,
        "public_key": key.public_key.hex(),
        "signature": base64.b64encode(key.sign(_signed_bytes(body))).decode(),
    }
    temporary = directory / f".{MANIFEST}.partial"
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    _sync_rename(temporary, directory / MANIFEST)


def scope_file_of(path: Path, chain_key: bytes, key: CheckpointKey) -> ScopeFile:
    """What a written file holds, read back and verified."""
    checked = check_path(path, chain_key, key.public_key)
    if not checked.ok or checked.first is None or checked.last is None:
        where = f"line {checked.line}: " if checked.line else ""
        raise ArchiveProblem(f"{path.name} does not verify: {where}{checked.problem}")
    return ScopeFile(
        scope=checked.scope,
        file=path.name,
        events=checked.events,
        first_sequence=checked.first.sequence + 1,
        last_sequence=checked.last.sequence,
        previous_hash=checked.first.chain_hash.hex(),
        first_hash=checked.first_event_hash.hex(),
        last_hash=checked.last.chain_hash.hex(),
        sha256=_sha256(path),
    )


def read_archive(directory: Path, chain_key: bytes, key: CheckpointKey) -> list[ScopeFile]:
    """The manifest's files, each checked against the manifest and verified; ArchiveProblem otherwise."""
    path = directory / MANIFEST
    try:
        document = json.loads(path.read_text())
        body = document["manifest"]
        signature = base64.b64decode(document["signature"], validate=True)
        listed = [ScopeFile(**entry) for entry in body["files"]]
    except FileNotFoundError:
        raise ArchiveProblem(f"{path} is missing") from None
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as error:
        raise ArchiveProblem(f"{path} is unreadable ({type(error).__name__})") from None
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, _signed_bytes(body))
    except InvalidSignature:
        raise ArchiveProblem(f"{path} is not signed by this service's key") from None
    for entry in listed:
        if Path(entry.file).name != entry.file:
            raise ArchiveProblem(f"{path} names a file outside its directory")
        file = directory / entry.file
        if not file.is_file():
            raise ArchiveProblem(f"{file} is missing")
        if _sha256(file) != entry.sha256:
            raise ArchiveProblem(f"{file} does not have the SHA-256 its manifest lists")
        if scope_file_of(file, chain_key, key) != entry:
            raise ArchiveProblem(f"{file} does not hold what its manifest lists")
    return listed
