"""Several FileDescriptorSets read as one: Tenantry's contracts and each team's.

Every set is built with `--include_imports`, so the same file (google/api/
annotations.proto, a shared proto of one's own) usually comes in several of
them. Identical copies are loaded once. Copies that differ are refused, naming
the file and both sets, except Google's own files (google/...), which differ
only by the protoc release that wrote them: the first set's copy is kept.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

log = logging.getLogger("tenantry.gateway")

SETTING = "GATEWAY_DESCRIPTOR_SET"
# Protoc's own release may change these: any copy serves the gateway.
_TOLERATED_PREFIX = "google/"


def descriptor_set_paths(setting: str, default: Path) -> list[Path]:
    """The setting's paths, separated by ',' or the OS path separator; the default when empty."""
    paths = [Path(part.strip()) for part in re.split(f"[,{re.escape(os.pathsep)}]", setting) if part.strip()]
    return paths or [default]


Files = list[descriptor_pb2.FileDescriptorProto]


def load_files(paths: Sequence[Path]) -> tuple[descriptor_pool.DescriptorPool, Files]:
    """A pool holding every file of every set once, and those files in load order."""
    chosen: dict[str, tuple[int, Path]] = {}
    files: Files = []
    for path in paths:
        for file in _read_set(path).file:
            known = chosen.get(file.name)
            if known is None:
                chosen[file.name] = (len(files), path)
                files.append(file)
                continue
            index, first_path = known
            if _without_source_info(files[index]) == _without_source_info(file):
                if not files[index].HasField("source_code_info"):
                    files[index] = file  # the same file with its comments: the OpenAPI descriptions
                continue
            if file.name.startswith(_TOLERATED_PREFIX):
                log.warning(
                    "descriptor sets hold different copies of a Google file; the first is used",
                    extra={"file": file.name, "used": str(first_path), "ignored": str(path)},
                )
                continue
            raise ValueError(
                f"{SETTING}: {first_path} and {path} hold different versions of {file.name}; "
                "build both against the same copy of it"
            )
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        try:
            pool.Add(file)
        except TypeError as error:
            reason = str(error).removeprefix("Couldn't build proto file into descriptor pool: ")
            raise ValueError(
                f"{SETTING}: cannot load {file.name} from {chosen[file.name][1]}: {reason} "
                "(build each set with protoc --include_imports; two sets may not define the same name)"
            ) from None
    return pool, files


def _read_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{SETTING}: cannot read {path}: {error.strerror or error}") from None
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(data)
    except DecodeError:
        files = descriptor_pb2.FileDescriptorSet()
    if not files.file or not all(file.name for file in files.file):
        raise ValueError(f"{SETTING}: {path} is not a FileDescriptorSet (protoc --descriptor_set_out=...)")
    return files


def _without_source_info(file: descriptor_pb2.FileDescriptorProto) -> bytes:
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)
    copy.ClearField("source_code_info")
    return copy.SerializeToString(deterministic=True)
