"""Hands messages to an SMTP server (aiosmtplib: plain, STARTTLS or implicit TLS) and says,
per message, whether it was accepted, failed for good (a 5xx answer to it), or may be tried
again (the server unreachable, a 4xx, a dropped connection, a refused login or sender)."""

from __future__ import annotations

import email.message
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import aiosmtplib

MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int | None
    username: str | None
    password: str | None
    tls: Literal["none", "starttls", "tls"]
    timeout: float
    # Trusted CAs for the server's certificate (PEM); None: the system's.
    ca_file: str | None = None

    @property
    def resolved_port(self) -> int:
        return self.port or {"none": 25, "starttls": 587, "tls": 465}[self.tls]


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    error: str | None = None
    # False when the server was not reached, the connection broke, or the server refused
    # Tenantry's setup: nothing about the message, so that alone never fails it.
    answered: bool = True


class SmtpTransport:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    async def send_all(self, messages: list[email.message.EmailMessage]) -> list[Delivery]:
        """One connection for the batch; a message the server refuses does not stop the others."""
        if not messages:
            return []
        settings = self._settings
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.resolved_port,
            username=settings.username,
            password=settings.password,
            use_tls=settings.tls == "tls",
            start_tls=settings.tls == "starttls",
            cert_bundle=settings.ca_file,
            timeout=settings.timeout,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as error:
            # Nothing was handed over: every message waits for the next attempt.
            return [Delivery(Outcome.RETRY, self._describe(error), answered=False)] * len(messages)
        deliveries: list[Delivery] = []
        try:
            for message in messages:
                try:
                    await client.send_message(message)
                    deliveries.append(Delivery(Outcome.SENT))
                except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as error:
                    deliveries.append(self._refusal(error))
                except (aiosmtplib.SMTPException, OSError) as error:
                    # The connection is gone: this message and the rest wait.
                    left = len(messages) - len(deliveries)
                    deliveries.extend([Delivery(Outcome.RETRY, self._describe(error), answered=False)] * left)
                    break
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        return deliveries

    def _refusal(self, error: aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPResponseException) -> Delivery:
        if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
            code = min((refused.code for refused in error.recipients), default=0)
        else:
            code = error.code
        if _is_setup_refusal(error, code):
            return Delivery(Outcome.RETRY, self._describe(error), answered=False)
        return Delivery(Outcome.FAILED if code >= 500 else Outcome.RETRY, self._describe(error))

    def _describe(self, error: Exception) -> str:
        if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
            text = "; ".join(f"{refused.code} {refused.message}" for refused in error.recipients)
        elif isinstance(error, aiosmtplib.SMTPResponseException):
            text = f"{error.code} {error.message}"
        else:
            text = f"{type(error).__name__}: {error}"
        # The server's words only; never the password, should any server echo it.
        if self._settings.password:
            text = text.replace(self._settings.password, "***")
        return " ".join(text.split())[:MAX_ERROR_LENGTH]


def _is_setup_refusal(error: Exception, code: int) -> bool:
    """Refusals of how Tenantry is set up, not of the message: a refused login, STARTTLS or a
    login required first (530), SMTP_FROM not allowed. Every message would meet them, so they
    wait for the operator's fix as they would for a server that is down, instead of failing."""
    if isinstance(error, aiosmtplib.SMTPAuthenticationError) or code == 530:
        return True
    return isinstance(error, aiosmtplib.SMTPSenderRefused) and code in (550, 553)
