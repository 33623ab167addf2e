"""The log format follows who reads: readable lines on a terminal, JSON lines otherwise (LOG_FORMAT overrides)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from devtools.stack import ROOT, python_path

LOG_ONE_LINE = (
    "import logging; from kit.logging import configure_logging; configure_logging('auth');"
    " logging.getLogger('kit.server').info('listening', extra={'address': '127.0.0.1:50051', 'note': 'two words'})"
)


def log_output(*, terminal: bool, log_format: str | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": python_path()}
    env.pop("LOG_FORMAT", None)
    if log_format is not None:
        env["LOG_FORMAT"] = log_format
    if not terminal:
        return subprocess.run([sys.executable, "-c", LOG_ONE_LINE], cwd=ROOT, env=env, capture_output=True, timeout=30)
    leader, follower = pty.openpty()
    try:
        finished = subprocess.run(
            [sys.executable, "-c", LOG_ONE_LINE], cwd=ROOT, env=env, stdout=follower, stderr=subprocess.PIPE, timeout=30
        )
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed once everything was read
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
    return subprocess.CompletedProcess(finished.args, finished.returncode, output, finished.stderr)


def test_logs_are_json_lines_when_nobody_watches_a_terminal() -> None:
    entry = json.loads(log_output(terminal=False).stdout)

    assert entry["service"] == "auth" and entry["message"] == "listening" and entry["address"] == "127.0.0.1:50051"


def test_logs_are_readable_lines_on_a_terminal() -> None:
    line = log_output(terminal=True).stdout.decode().strip()

    assert not line.startswith("{")
    assert 'INFO    auth     listening  address=127.0.0.1:50051 note="two words"' in line


def test_log_format_overrides_the_choice_and_refuses_unknown_values() -> None:
    assert json.loads(log_output(terminal=True, log_format="json").stdout)["message"] == "listening"
    assert log_output(terminal=False, log_format="text").stdout.decode().split(" ", 1)[1].startswith("INFO    auth")
    refused = log_output(terminal=False, log_format="fancy")
    assert refused.returncode != 0 and b"LOG_FORMAT: must be auto, json or text" in refused.stderr
