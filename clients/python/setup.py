"""Puts Tenantry's generated contracts (the repository's gen/tenantry) into the package.

The client calls auth's GetJwks and WatchRevocations and the audit service's
ingest, so it needs the generated stubs. They are not copied into this folder
(gen/ is the one generated tree, checked by tests/test_contracts.py): the
build takes them from the repository, which pip has at hand both for
`pip install ./clients/python` and for `pip install "git+…#subdirectory=clients/python"`
(it clones the whole repository and builds inside it). The wheel and the sdist
then carry them as the top-level package `tenantry`, as Tenantry's own code imports them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
# In the repository: ../../gen; in an unpacked sdist: the copy made by sdist below.
CONTRACTS = next(
    (path for path in (HERE.parent.parent / "gen" / "tenantry", HERE / "tenantry") if (path / "__init__.py").exists()),
    None,
)


def _copy_contracts(target: Path) -> None:
    if CONTRACTS is None:
        raise SystemExit("Tenantry's generated contracts (gen/tenantry) are missing: build from the repository")
    if CONTRACTS.resolve() != target.resolve():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(CONTRACTS, target, ignore=shutil.ignore_patterns("__pycache__"))


class BuildWithContracts(build_py):
    def run(self) -> None:
        super().run()
        _copy_contracts(Path(self.build_lib) / "tenantry")


class SdistWithContracts(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        _copy_contracts(Path(base_dir) / "tenantry")


setup(cmdclass={"build_py": BuildWithContracts, "sdist": SdistWithContracts})
