"""A local SMTP catcher: a real SMTP server on 127.0.0.1 that keeps nothing and prints one
short line per caught message, with its link, so a developer can follow an invitation
without a mail server.

`make run` starts it when SMTP_HOST is unset; compose runs it as a service
(`python mail_catcher.py [PORT]`). Standard library and aiosmtpd only, so that it also
runs on its own.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import sys
import threading
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller

DEFAULT_PORT = 1025
MAIL_CATCHER_PORT_ENV = "MAIL_CATCHER_PORT"
_LINK = re.compile(r"https?://\S+")


def summary(content: bytes, recipients: list[str]) -> str:
    """One line: to whom, the subject and the first link of the plain-text part."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",)) if isinstance(message, email.message.EmailMessage) else None
    text = body.get_content() if body is not None else ""
    link = _LINK.search(text)
    subject = " ".join(str(message.get("Subject", "")).split())
    return f"mail  to={','.join(recipients)}  subject={subject!r}" + (f"\n      link: {link.group(0)}" if link else "")


class _PrintingHandler:
    def __init__(self, output: Any) -> None:
        self._output = output
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        line = summary(bytes(envelope.original_content or envelope.content), list(envelope.rcpt_tos))
        with self._lock:
            print(line, file=self._output, flush=True)
        return "250 Message accepted for delivery"


@dataclass
class MailCatcher:
    controller: Controller

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def smtp_env(self) -> dict[str, str]:
        """What the auth service needs to send here."""
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port), "SMTP_TLS": "none"}

    def stop(self) -> None:
        self.controller.stop()


def start_mail_catcher(port: int | None = None, output: Any = None) -> MailCatcher:
    """On port, else MAIL_CATCHER_PORT, else 1025."""
    if port is None:
        port = int(os.environ.get(MAIL_CATCHER_PORT_ENV, DEFAULT_PORT))
    controller = Controller(_PrintingHandler(output or sys.stdout), hostname="127.0.0.1", port=port)
    controller.start()
    return MailCatcher(controller)


def main() -> None:
    catcher = start_mail_catcher(int(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"mail catcher on smtp://127.0.0.1:{catcher.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        catcher.stop()


if __name__ == "__main__":
    main()
