"""The email sender: delivers the email outbox over SMTP, a background job of every auth replica.

It claims a batch of due messages in one short transaction (the claim counts the attempt and
leases the rows, so other replicas skip them), sends them with no database connection held,
then records each outcome: sent (the payload with its links and tokens is cleared), failed for
good on a 5xx answer, or on a 4xx once EMAIL_MAX_ATTEMPTS are spent (the payload is cleared
too), or tried again after an exponential backoff. While the SMTP server is down (or refuses
the login) messages wait in the outbox however long it takes: an outage alone never fails a
message, so none is lost. Delivery is at least once: a replica that dies after the server
took a message but before recording it sends it again once its lease ends.

New emails wake the sender of the replica that queued them as their transaction commits;
the others find them by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import email.utils
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kit.db import Database
from kit.outbox import Job
from services.auth.mail.rendering import RenderedEmail, TemplateError, render
from services.auth.mail.smtp import Delivery, Outcome, SmtpSettings, SmtpTransport
from services.auth.models import EmailMessage
from services.auth.repository import emails
from services.auth.settings import AuthSettings

log = logging.getLogger(__name__)

# The app.tenant_id the sender binds; the outbox's policy lets it see every tenant's rows
# (migration 0003 says why). No caller's scope can take this value.
EMAIL_SENDER_SCOPE = "email-sender"
BATCH_SIZE = 10


@dataclass(frozen=True)
class DeliveryPolicy:
    from_address: str
    retry_base: timedelta
    retry_max: timedelta
    max_attempts: int
    poll_interval: float
    # How long a claim keeps other senders away: longer than sending a batch can take.
    lease: timedelta

    def retry_delay(self, attempts: int) -> timedelta:
        return min(self.retry_max, self.retry_base * 2 ** max(attempts - 1, 0))


def email_sender_jobs(database: Database, settings: AuthSettings) -> list[Job]:
    """The sender as a background job, or none without SMTP_HOST (emails then wait in the outbox)."""
    if not settings.smtp_host:
        log.warning("email sender off: SMTP_HOST is not set, emails stay queued")
        return []
    smtp = SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        tls=settings.smtp_tls,
        timeout=settings.smtp_timeout_seconds,
        ca_file=settings.smtp_ca_file,
    )
    policy = DeliveryPolicy(
        from_address=settings.smtp_from,
        retry_base=timedelta(seconds=settings.email_retry_base_seconds),
        retry_max=timedelta(seconds=settings.email_retry_max_seconds),
        max_attempts=settings.email_max_attempts,
        poll_interval=settings.email_poll_seconds,
        # Connecting, then each message of a batch, each within the timeout, twice over.
        lease=timedelta(seconds=2 * settings.smtp_timeout_seconds * (BATCH_SIZE + 2)),
    )
    log.info("email sender on", extra={"smtp_host": smtp.host, "smtp_port": smtp.resolved_port, "smtp_tls": smtp.tls})
    return [EmailSender(database, SmtpTransport(smtp), policy).run]


class EmailSender:
    def __init__(self, database: Database, transport: SmtpTransport, policy: DeliveryPolicy) -> None:
        self._database = database
        self._transport = transport
        self._policy = policy
        self._from_name, self._from_address = email.utils.parseaddr(policy.from_address)
        self._domain = self._from_address.rpartition("@")[2] or "tenantry.local"

    async def run(self) -> None:
        """Forever: woken by new emails, polling otherwise, backing off while the database fails."""
        backoff = 0.5
        while True:
            # Cleared before the batch, so an email queued meanwhile wakes the next round.
            emails.email_queued.clear()
            try:
                claimed, connected = await self.deliver_due()
                backoff = 0.5
            except Exception as error:  # the database, most likely; the next round tries again
                log.warning("email sender retrying", extra={"reason": type(error).__name__})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if claimed == BATCH_SIZE and connected:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(emails.email_queued.wait(), timeout=self._policy.poll_interval)

    async def deliver_due(self) -> tuple[int, bool]:
        """One batch; says how many messages it claimed and whether the server was reached."""
        now = datetime.now(UTC)
        async with self._database.unit_of_work(scope=EMAIL_SENDER_SCOPE) as session:
            claimed = await emails.claim_due_emails(
                session, now=now, lease_until=now + self._policy.lease, limit=BATCH_SIZE
            )
        if not claimed:
            return 0, True
        outcomes: dict[int, Delivery] = {}
        sendable: list[tuple[int, email.message.EmailMessage]] = []
        languages: dict[int, str] = {}
        for index, row in enumerate(claimed):
            try:
                rendered = self._render(row)
                sendable.append((index, self._compose(row, rendered, now)))
            except (TemplateError, ValueError, TypeError) as error:
                # A message that cannot be written now never can: no retry would help.
                reason = (
                    str(error) if isinstance(error, TemplateError) else f"cannot be written: {type(error).__name__}"
                )
                outcomes[index] = Delivery(Outcome.FAILED, reason)
                continue
            languages[index] = rendered.language
        deliveries = await self._transport.send_all([message for _, message in sendable])
        outcomes.update((index, delivery) for (index, _), delivery in zip(sendable, deliveries, strict=True))
        await self._record(claimed, outcomes, languages)
        connected = all(delivery.answered for delivery in deliveries)
        return len(claimed), connected

    def _render(self, row: EmailMessage) -> RenderedEmail:
        if row.payload is None:
            raise TemplateError("the message has no payload left to write it from")
        return render(row.template, row.language, row.payload)

    def _compose(self, row: EmailMessage, rendered: RenderedEmail, now: datetime) -> email.message.EmailMessage:
        message = email.message.EmailMessage()
        message["From"] = email.utils.formataddr((rendered.sender_name or self._from_name, self._from_address))
        message["To"] = row.recipient
        message["Subject"] = rendered.subject
        message["Date"] = email.utils.format_datetime(now)
        # The outbox row's id: a receiver (and a test) can tell a resend from a new message.
        message["Message-ID"] = f"<{row.id}@{self._domain}>"
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        # After the content: setting it clears Content-* headers.
        message["Content-Language"] = rendered.language
        return message

    async def _record(
        self, claimed: list[EmailMessage], outcomes: dict[int, Delivery], languages: dict[int, str]
    ) -> None:
        now = datetime.now(UTC)
        async with self._database.unit_of_work(scope=EMAIL_SENDER_SCOPE) as session:
            for index, row in enumerate(claimed):
                delivery = outcomes[index]
                error = delivery.error or "unknown error"
                if delivery.outcome is Outcome.SENT:
                    await emails.mark_sent(session, row.id, language=languages[index], now=now)
                elif delivery.outcome is Outcome.FAILED:
                    await emails.mark_failed(session, row.id, error=error)
                elif delivery.answered and row.attempts >= self._policy.max_attempts:
                    await emails.mark_failed(session, row.id, error=f"gave up after {row.attempts} attempts: {error}")
                else:
                    # During an outage attempts still grow, and so does the wait, up to its maximum.
                    retry_at = now + self._policy.retry_delay(row.attempts)
                    await emails.schedule_retry(session, row.id, error=error, next_attempt_at=retry_at)
                log.info(
                    "email " + ("sent" if delivery.outcome is Outcome.SENT else "not sent"),
                    extra={
                        "email_id": str(row.id),
                        "template": row.template,
                        "attempts": row.attempts,
                        "error": delivery.error,
                    },
                )
