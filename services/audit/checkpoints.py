"""Signed checkpoints of each chain's head, kept where the database cannot reach.

The hash chain alone cannot show that its newest events are gone: a database
superuser who deletes them and rewinds `chain_heads` leaves a shorter chain
that is intact. So the audit service signs (scope, sequence, head hash, time)
with an Ed25519 key the database never holds and appends the checkpoint to
that scope's log in the service's data directory. Verification then requires
the chain to reach every checkpoint with the hash that was signed.

Each scope's log is a file of JSON lines that the service only ever appends
to, so a damaged line stays as evidence. The signed payload is plain text
(see `signed_payload`) so that callers can check a checkpoint they kept with
any Ed25519 library.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.chain import ChainLink

log = logging.getLogger(__name__)

PAYLOAD_HEADER = "tenantry-audit-checkpoint/v1"
ALGORITHM = "Ed25519"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# A scope is a tenant id or "platform"; it also names a file, so nothing else.
_SCOPE = re.compile(r"[0-9A-Za-z-]{1,64}")


def signed_payload(scope: str, sequence: int, head_hash: bytes, created_at: datetime) -> bytes:
    """The exact bytes a checkpoint's signature covers, one field a line."""
    fields = [PAYLOAD_HEADER, scope, str(sequence), head_hash.hex(), created_at.astimezone(UTC).strftime(_TIME_FORMAT)]
    return "\n".join(fields).encode()


@dataclass(frozen=True)
class Checkpoint:
    scope: str
    sequence: int
    head_hash: bytes
    created_at: datetime
    key_id: str
    signature: bytes

    @property
    def payload(self) -> bytes:
        return signed_payload(self.scope, self.sequence, self.head_hash, self.created_at)

    def to_line(self) -> str:
        return json.dumps(
            {
                "scope": self.scope,
                "sequence": self.sequence,
                "head_hash": self.head_hash.hex(),
                "created_at": self.created_at.astimezone(UTC).strftime(_TIME_FORMAT),
                "key_id": self.key_id,
                "signature": base64.b64encode(self.signature).decode(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        """Parses one log line; ValueError if it is not a checkpoint at all."""
        try:
            document: dict[str, Any] = json.loads(line)
            checkpoint = cls(
                scope=str(document["scope"]),
                sequence=int(document["sequence"]),
                head_hash=bytes.fromhex(document["head_hash"]),
                created_at=datetime.strptime(document["created_at"], _TIME_FORMAT).replace(tzinfo=UTC),
                key_id=str(document["key_id"]),
                signature=base64.b64decode(document["signature"], validate=True),
            )
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as error:
            raise ValueError(f"unreadable ({type(error).__name__})") from None
        return checkpoint


class CheckpointKey:
    """The Ed25519 key that signs checkpoints; the database never sees it."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        # Short and stable: callers match a kept checkpoint to its key by it.
        self.key_id = hashlib.sha256(self.public_key).hexdigest()[:16]
        self._verifier = Ed25519PublicKey.from_public_bytes(self.public_key)

    @classmethod
    def load_or_create(cls, path: Path) -> CheckpointKey:
        """The key in path, made there (mode 0600) on first start."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            try:
                # O_EXCL: of two processes starting at once, one key wins.
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(pem)
                    file.flush()
                    os.fsync(file.fileno())
                log.info("audit checkpoint key created", extra={"path": str(path)})
        if path.stat().st_mode & 0o077:
            log.warning("audit checkpoint key is readable by others", extra={"path": str(path)})
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise SystemExit(f"audit: {path} holds no Ed25519 private key")
        return cls(private_key)

    def sign(self, payload: bytes) -> bytes:
        return self._private_key.sign(payload)

    def signed(self, checkpoint: Checkpoint) -> bool:
        if checkpoint.key_id != self.key_id:
            return False
        try:
            self._verifier.verify(checkpoint.signature, checkpoint.payload)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class ScopeLog:
    """One scope's checkpoints as read back, or the first thing wrong with them."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    problem: str = ""

    @property
    def latest(self) -> Checkpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None


class CheckpointLog:
    """Per-scope append-only files of signed checkpoints."""

    def __init__(self, directory: Path, key: CheckpointKey) -> None:
        self.directory = directory
        self.key = key
        self._lock = asyncio.Lock()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._latest: dict[str, Checkpoint] = {}
        for path in directory.glob("*.jsonl"):
            newest = self._newest_signed(path)
            if newest is not None:
                self._latest[newest.scope] = newest

    def latest_by_scope(self) -> dict[str, Checkpoint]:
        """The newest checkpoint of each scope that this process wrote or found at start."""
        return dict(self._latest)

    async def record(self, scope: str, head: ChainLink) -> Checkpoint:
        """Signs and appends a checkpoint of head, unless one as new exists."""
        async with self._lock:
            latest = self._latest.get(scope)
            if latest is not None and latest.sequence >= head.sequence:
                return latest
            created_at = datetime.now(UTC)
            unsigned = signed_payload(scope, head.sequence, head.chain_hash, created_at)
            checkpoint = Checkpoint(
                scope, head.sequence, head.chain_hash, created_at, self.key.key_id, self.key.sign(unsigned)
            )
            await asyncio.to_thread(self._append, self._path(scope), checkpoint.to_line() + "\n")
            self._latest[scope] = checkpoint
            return checkpoint

    async def read(self, scope: str) -> ScopeLog:
        """Every checkpoint of the scope, each checked: signed by our key, for this scope, in order."""
        # Taken before the file is read: a checkpoint recorded meanwhile is
        # remembered only once its line is written, so it cannot look lost.
        remembered = self._latest.get(scope)
        return await asyncio.to_thread(self._read, scope, remembered)

    def _read(self, scope: str, remembered: Checkpoint | None) -> ScopeLog:
        path = self._path(scope)
        lines = path.read_text().splitlines() if path.exists() else []
        checkpoints: list[Checkpoint] = []
        for number, line in enumerate(lines, start=1):
            try:
                checkpoint = Checkpoint.from_line(line)
            except ValueError as error:
                return ScopeLog(checkpoints, f"checkpoint log line {number} is {error}")
            if checkpoint.scope != scope or not self.key.signed(checkpoint):
                return ScopeLog(checkpoints, f"checkpoint log line {number} does not carry a valid signature")
            if checkpoints and checkpoint.sequence <= checkpoints[-1].sequence:
                return ScopeLog(
                    checkpoints, f"checkpoint log line {number} goes back to sequence {checkpoint.sequence}"
                )
            checkpoints.append(checkpoint)
        if remembered is not None and (not checkpoints or checkpoints[-1].sequence < remembered.sequence):
            return ScopeLog(checkpoints, f"checkpoint log lost its checkpoint of sequence {remembered.sequence}")
        return ScopeLog(checkpoints)

    def _newest_signed(self, path: Path) -> Checkpoint | None:
        for line in reversed(path.read_text().splitlines()):
            try:
                checkpoint = Checkpoint.from_line(line)
            except ValueError:
                continue
            if self.key.signed(checkpoint) and path.name == f"{checkpoint.scope}.jsonl":
                return checkpoint
        return None

    def _path(self, scope: str) -> Path:
        if not _SCOPE.fullmatch(scope):
            raise ValueError("a scope is a tenant id or 'platform'")
        return self.directory / f"{scope}.jsonl"

    @staticmethod
    def _append(path: Path, line: str) -> None:
        # Append mode only, never a rewrite: earlier lines stay as they were.
        with path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
