"""`python -m services.audit verify-export FILE [--public-key KEY]`: checks an export or archive offline.

Needs only AUDIT_CHAIN_KEY in the environment (no database, no service), and
takes NDJSON, CSV, and gzip-compressed NDJSON (a month's archive file).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import io
import os
import sys
from pathlib import Path

from services.audit.archive.lines import CSV, NDJSON, read_lines
from services.audit.archive.verify import FileCheck, verify_file

USAGE = "python -m services.audit verify-export FILE [--public-key KEY]"


def _public_key(text: str) -> bytes:
    for decode in (bytes.fromhex, lambda value: base64.b64decode(value, validate=True)):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return raw
    raise SystemExit("verify-export: --public-key must be the 32-byte Ed25519 key, hex or base64")


def open_text(path: Path, compressed: bool) -> io.TextIOWrapper:
    binary = gzip.open(path, "rb") if compressed else path.open("rb")  # noqa: SIM115 - the wrapper closes it
    return io.TextIOWrapper(binary, encoding="utf-8", newline="")


def check_path(path: Path, chain_key: bytes, trusted_key: bytes | None = None) -> FileCheck:
    """Verifies a file of any of the three kinds, told apart by their first bytes."""
    with path.open("rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    with open_text(path, compressed) as text:
        format = NDJSON if text.read(1) == "{" else CSV
    with open_text(path, compressed) as text:
        return verify_file(read_lines(text, format), chain_key, trusted_key)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.audit verify-export", usage=USAGE)
    parser.add_argument("file", type=Path)
    parser.add_argument("--public-key", help="the audit service's checkpoint key (VerifyAuditTrail's checkpoint_key)")
    args = parser.parse_args(argv)
    chain_key = os.environ.get("AUDIT_CHAIN_KEY", "")
    if not chain_key:
        print("verify-export: set AUDIT_CHAIN_KEY to the key the trail was chained with", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"verify-export: {args.file} is not a file", file=sys.stderr)
        return 2
    try:
        result = check_path(args.file, chain_key.encode(), _public_key(args.public_key) if args.public_key else None)
    except (OSError, UnicodeDecodeError, EOFError) as error:
        print(f"verify-export: cannot read {args.file}: {type(error).__name__}", file=sys.stderr)
        return 1
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if not result.ok:
        where = f"line {result.line}: " if result.line else ""
        print(f"FAILED: {args.file}: {where}{result.problem}")
        return 1
    assert result.first is not None and result.last is not None
    print(
        f"ok: {args.file}: {result.events} events of {result.scope}, sequences "
        f"{result.first.sequence + 1}..{result.last.sequence}, end hash {result.last.chain_hash.hex()}, "
        f"signed by key {result.key_id}"
    )
    return 0
