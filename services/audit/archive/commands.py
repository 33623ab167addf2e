"""The audit service's operator commands (see kit/cli.py)."""

from __future__ import annotations

from kit.cli import Command

COMMANDS: dict[str, Command] = {}
