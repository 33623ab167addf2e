"""`make run`'s mail catcher is a real SMTP server that prints each message with its link."""

from __future__ import annotations

import io
import smtplib
from email.message import EmailMessage

from devtools.mail_catcher import start_mail_catcher
from devtools.stack import free_port
from tests.stack import eventually


def test_the_catcher_prints_one_line_per_message_with_its_link() -> None:
    output = io.StringIO()
    catcher = start_mail_catcher(free_port(), output)
    try:
        message = EmailMessage()
        message["From"] = "Tenantry <no-reply@tenantry.local>"
        message["To"] = "someone@example.test"
        message["Subject"] = "You are invited to acme on Tenantry"
        message.set_content("Accept here:\nhttp://127.0.0.1:8080/invitations/accept?token=abc.def\n")
        message.add_alternative(
            '<a href="http://127.0.0.1:8080/invitations/accept?token=abc.def">Accept</a>', subtype="html"
        )
        with smtplib.SMTP("127.0.0.1", catcher.port, timeout=5) as client:
            client.send_message(message)
        printed = eventually(output.getvalue)
    finally:
        catcher.stop()
    assert "to=someone@example.test" in printed and "You are invited to acme" in printed
    assert "link: http://127.0.0.1:8080/invitations/accept?token=abc.def\n" in printed
    assert catcher.smtp_env == {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(catcher.port), "SMTP_TLS": "none"}
