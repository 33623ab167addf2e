"""The README's API-key walkthrough, run as written against `make run`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from devtools.stack import ROOT
from tests.e2e.test_make_run import make_run, run_env  # noqa: F401 - run_env is a fixture

KEY = re.compile(r"tnt_[a-z2-7]{8}_[a-z2-7]{52}")


def readme_snippet(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {section}\n")
    opening = text.index("```sh\n", start) + len("```sh\n")
    return text[opening : text.index("```", opening)]


def test_the_readme_api_key_walkthrough_works_on_make_run(run_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    snippet = readme_snippet("API keys")
    assert snippet.startswith("make seed")
    # `make seed` runs `python -m devtools.seed` once make has installed .venv: the test runs in that venv.
    script = snippet.replace("make seed", f"{sys.executable} -m devtools.seed", 1)
    with make_run(run_env, tmp_path / "run.log") as run:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = run.text()
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    me_by_key, me_by_bearer, listed, revoked, refused = answers[-5:]
    assert me_by_key["slug"] == me_by_bearer["slug"] == "acme"
    assert [key["name"] for key in listed["api_keys"]] == ["ci"] and "secret" not in json.dumps(listed)
    assert revoked["state"] == "API_KEY_STATE_REVOKED"
    assert refused == {
        "code": 16,
        "message": "API key has been revoked",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_REVOKED", "domain": "tenantry.dev"}
        ],
    }
    assert not KEY.search(log), "a key reached the logs"
