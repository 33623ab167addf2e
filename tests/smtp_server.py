"""A real SMTP server on loopback for tests (aiosmtpd): it keeps every message it accepts,
refuses recipients named bounce-...@ for good (550) and later-...@ for now (451), and can be stopped and started again
on the same port to play an outage."""

from __future__ import annotations

import email
import email.message
import email.policy
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller

from devtools.stack import free_port

_LINK = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class CaughtEmail:
    recipients: tuple[str, ...]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "no text/plain part"
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None, "no text/html part"
        return str(part.get_content())

    @property
    def link(self) -> str:
        found = _LINK.search(self.text)
        assert found, f"no link in {self.text!r}"
        return found.group(0)

    @property
    def token(self) -> str:
        return self.link.split("token=", 1)[1]


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address.startswith("bounce-"):
            return "550 5.1.1 No such mailbox here"
        if address.startswith("later-"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self._server.record(CaughtEmail(tuple(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(
        self, tls: Literal["none", "starttls", "tls"] = "none", certificate: tuple[Path, Path] | None = None
    ) -> None:
        self.port = free_port()
        self.tls = tls
        self._certificate = certificate
        self._caught: list[CaughtEmail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> None:
        options: dict[str, Any] = {}
        if self.tls != "none":
            assert self._certificate is not None, "TLS needs a certificate"
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self._certificate)
            if self.tls == "tls":
                options["ssl_context"] = context
            else:
                options.update(tls_context=context, require_starttls=True)
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def record(self, caught: CaughtEmail) -> None:
        with self._lock:
            self._caught.append(caught)

    @property
    def caught(self) -> list[CaughtEmail]:
        with self._lock:
            return list(self._caught)

    def to(self, recipient: str) -> list[CaughtEmail]:
        return [caught for caught in self.caught if recipient in caught.recipients]

    @property
    def env(self) -> dict[str, str]:
        """What an auth process needs to send here."""
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port), "SMTP_TLS": self.tls}
