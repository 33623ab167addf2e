"""Generates the Python code for every contract in protos/.

One command for the Makefile and for the test that fails when the committed
code is stale: `python -m devtools.protogen [OUTPUT_DIR]`.
"""

from __future__ import annotations

import importlib.resources
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
GENERATED_ROOT = ROOT / "gen"
DESCRIPTOR_SET_NAME = "tenantry.binpb"


def _include_paths() -> list[str]:
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    import google.api

    googleapis = Path(next(iter(google.api.__path__))).parent.parent
    return [str(PROTO_ROOT), str(well_known), str(googleapis)]


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(output_dir: Path) -> None:
    """Writes *_pb2.py, *_pb2_grpc.py and their .pyi stubs under output_dir."""
    output_dir.mkdir(parents=True, exist_ok=True)
    plugin_dir = Path(sys.executable).parent
    sources = [str(path.relative_to(PROTO_ROOT)) for path in proto_files()]
    args = [
        "grpc_tools.protoc",
        *(f"-I{path}" for path in _include_paths()),
        f"--plugin=protoc-gen-mypy={plugin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={output_dir}",
        f"--grpc_python_out={output_dir}",
        f"--mypy_out={output_dir}",
        f"--mypy_grpc_out={output_dir}",
        # The gateway reads routes, messages and comments from this set alone.
        f"--descriptor_set_out={output_dir / DESCRIPTOR_SET_NAME}",
        "--include_imports",
        "--include_source_info",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Regular packages, so that tools which ignore namespace packages still
    # find the generated modules.
    for directory in [output_dir / "tenantry", *(output_dir / "tenantry").rglob("*")]:
        if directory.is_dir():
            (directory / "__init__.py").touch()


def generated_files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else GENERATED_ROOT
    # Generate into a scratch folder and swap, so that a failed run never
    # leaves half-written code behind.
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        shutil.rmtree(target / "tenantry", ignore_errors=True)
        shutil.copytree(Path(scratch) / "tenantry", target / "tenantry")
        shutil.copyfile(Path(scratch) / DESCRIPTOR_SET_NAME, target / DESCRIPTOR_SET_NAME)
    print(f"generated {len(proto_files())} contracts into {target}")


if __name__ == "__main__":
    main()
