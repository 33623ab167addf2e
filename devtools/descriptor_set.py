"""`python -m devtools.descriptor_set OUT.binpb -I ROOT FILE.proto...`: a team's contract for the gateway.

Writes the FileDescriptorSet that `GATEWAY_DESCRIPTOR_SET` takes (beside
Tenantry's own, gen/tenantry.binpb): the files with their imports and their
comments (the OpenAPI descriptions). Google's protos (google/api/annotations.proto,
the well-known types) and Tenantry's protos/ are found without an -I.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from grpc_tools import protoc

from devtools.protogen import _include_paths


def build(target: Path, roots: Sequence[Path], files: Sequence[str]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        *(f"-I{root}" for root in roots),
        *(f"-I{path}" for path in _include_paths()),
        f"--descriptor_set_out={target}",
        "--include_imports",
        "--include_source_info",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {', '.join(files)}")
    return target


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.descriptor_set", description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="the descriptor set to write, e.g. tickets.binpb")
    parser.add_argument("files", nargs="+", help="the .proto files, relative to an -I root")
    parser.add_argument("-I", dest="roots", type=Path, action="append", default=[], help="where the protos are")
    arguments = parser.parse_args(argv)
    build(arguments.target, arguments.roots, arguments.files)
    print(f"wrote {arguments.target}")


if __name__ == "__main__":
    main()
