"""Email delivery over SMTP, against a real SMTP server on loopback and real auth processes.

This module runs its own stack on its own database, with auth sending to the test's SMTP
server (the shared stack sends nothing, so other tests read tokens from the outbox)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import requests
from tenantry.auth.v1 import emails_service_pb2, emails_service_pb2_grpc

from devtools.stack import ServiceProcess, free_port
from tests.gateway.conftest import gateway_in_front
from tests.smtp_server import CaughtEmail, SmtpServer
from tests.stack import MEMBER_PASSWORD, Stack, Tenant, bearer, eventually, own_stack, rpc_error

# Fast retries, so an outage and its end fit in a test.
SENDER_ENV = {
    "EMAIL_RETRY_BASE_SECONDS": "0.2",
    "EMAIL_RETRY_MAX_SECONDS": "0.5",
    "EMAIL_POLL_SECONDS": "0.2",
    "EMAIL_MAX_ATTEMPTS": "3",
    "SMTP_TIMEOUT_SECONDS": "5",
    "SMTP_FROM": "Tenantry Tests <no-reply@tenantry.test>",
    "PUBLIC_BASE_URL": "https://app.tenantry.test",
}


@pytest.fixture(scope="module")
def mail_stack(fresh_database: Any, smtp: SmtpServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(fresh_database(), tmp_path_factory.mktemp("mail-stack"), {**smtp.env, **SENDER_ENV}) as running:
        yield running


@pytest.fixture(scope="module")
def mail_gateway(mail_stack: Stack) -> Iterator[str]:
    with gateway_in_front(mail_stack, "gateway-mail") as url:
        yield url


@pytest.fixture(scope="module")
def emails(mail_stack: Stack) -> emails_service_pb2_grpc.EmailServiceStub:
    return emails_service_pb2_grpc.EmailServiceStub(mail_stack.channels["auth"])


LOG_FIELDS = {
    "id",
    "tenant_id",
    "recipient",
    "template",
    "language",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "sent_at",
}


def new_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.test"


def delivered(smtp: SmtpServer, recipient: str) -> CaughtEmail:
    """The one message the server caught for recipient, once it arrived."""
    caught = eventually(lambda: smtp.to(recipient))
    assert len(caught) == 1, [message.message_id for message in caught]
    return caught[0]


def outbox_row(stack: Stack, recipient: str) -> dict[str, Any]:
    rows = stack.sql(
        "SELECT status, attempts, last_error, payload, sent_at, language, tenant_id::text, next_attempt_at "
        "FROM auth.email_outbox WHERE recipient = %s ORDER BY created_at DESC LIMIT 1",
        (recipient,),
    )
    assert rows, f"no email to {recipient}"
    keys = ("status", "attempts", "last_error", "payload", "sent_at", "language", "tenant_id", "next_attempt_at")
    return dict(zip(keys, rows[0], strict=True))


def join(stack: Stack, smtp: SmtpServer, tenant: Tenant, role: str = "admin") -> tuple[str, str]:
    """A new member of the tenant, by the invitation that arrived by email: (email, access token)."""
    email = new_email(role)
    stack.invite(tenant.owner_token, email, role)
    accepted = stack.accept(delivered(smtp, email).token, full_name="Mail Member", password=MEMBER_PASSWORD)
    return email, accepted.tokens.access_token


def test_an_invitation_arrives_as_text_and_html_and_its_link_joins_the_tenant(
    mail_stack: Stack, smtp: SmtpServer, mail_gateway: str
) -> None:
    tenant = mail_stack.create_tenant("mail")
    email = new_email("invitee")
    mail_stack.invite(tenant.owner_token, email, "viewer")
    message = delivered(smtp, email)

    assert message.message["To"] == email and "no-reply@tenantry.test" in str(message.message["From"])
    assert tenant.slug in message.subject and message.message["Content-Language"] == "en"
    assert message.message.get_content_type() == "multipart/alternative"
    assert message.link.startswith("https://app.tenantry.test/invitations/accept?token=")
    assert tenant.slug in message.text and "viewer" in message.text
    assert f'href="{message.link}"' in message.html and f"<strong>{tenant.slug}</strong>" in message.html
    # The link is the way in: accepted over REST with the token read out of the message.
    accepted = requests.post(
        f"{mail_gateway}/api/v1/invitations:accept",
        json={"token": message.token, "full_name": "Invited Person", "password": MEMBER_PASSWORD},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["tenant_slug"] == tenant.slug
    # The log keeps who, what and when; the payload with the token is gone.
    row = eventually(lambda: (row := outbox_row(mail_stack, email))["status"] == "sent" and row)
    assert row["attempts"] == 1 and row["sent_at"] is not None and row["last_error"] is None
    assert row["payload"] is None and row["next_attempt_at"] is None
    leftovers = mail_stack.sql(
        "SELECT count(*) FROM auth.email_outbox WHERE payload::text LIKE %s", (f"%{message.token}%",)
    )
    assert leftovers == [(0,)]


def test_the_email_is_written_in_the_recipients_preferred_language(mail_stack: Stack, smtp: SmtpServer) -> None:
    first, second = mail_stack.create_tenant("lang-a"), mail_stack.create_tenant("lang-b")
    afrikaans, french = join(mail_stack, smtp, first)[0], join(mail_stack, smtp, first)[0]
    # The lead's registration sets it; here the database does.
    mail_stack.sql("UPDATE auth.users SET preferred_language = 'af' WHERE email = %s", (afrikaans,))
    mail_stack.sql("UPDATE auth.users SET preferred_language = 'fr' WHERE email = %s", (french,))
    for email in (afrikaans, french):
        mail_stack.invite(second.owner_token, email, "viewer")

    in_afrikaans = eventually(lambda: len(smtp.to(afrikaans)) == 2 and smtp.to(afrikaans)[1])
    assert in_afrikaans.message["Content-Language"] == "af"
    assert in_afrikaans.subject.startswith("Jy is uitgenooi na") and second.slug in in_afrikaans.subject
    assert "Aanvaar die uitnodiging" in in_afrikaans.text and 'lang="af"' in in_afrikaans.html
    assert outbox_row(mail_stack, afrikaans)["language"] == "af"
    # A language without templates falls back to English, and the log says so.
    in_english = eventually(lambda: len(smtp.to(french)) == 2 and smtp.to(french)[1])
    assert in_english.message["Content-Language"] == "en" and in_english.subject.startswith("You are invited")
    assert outbox_row(mail_stack, french)["language"] == "en"


def test_values_are_escaped_in_the_html_part(mail_stack: Stack, smtp: SmtpServer) -> None:
    # A custom role name cannot carry markup (names are [a-z0-9_]); the tenant slug
    # cannot either. The payload is what a template gets, so write one directly.
    email = new_email("escaped")
    mail_stack.sql(
        "INSERT INTO auth.email_outbox (id, recipient, template, language, payload, status, created_at) "
        "VALUES (%s, %s, 'invitation', 'en', %s, 'queued', now())",
        (
            uuid.uuid4(),
            email,
            '{"link": "https://app.tenantry.test/a?token=x&next=<b>", "tenant_slug": "<script>alert(1)</script>",'
            ' "role": "a\\"b", "expires_at": "2026-12-01T10:00:00+00:00"}',
        ),
    )
    message = delivered(smtp, email)
    assert "<script>" not in message.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
    assert 'href="https://app.tenantry.test/a?token=x&amp;next=&lt;b&gt;"' in message.html
    assert "a&quot;b" in message.html and "2026-12-01 10:00 UTC" in message.text
    # The plain-text part is not HTML: it shows the values as they are.
    assert "<script>alert(1)</script>" in message.text


def test_an_smtp_outage_loses_nothing_and_delivers_once_the_server_is_back(mail_stack: Stack, smtp: SmtpServer) -> None:
    tenant = mail_stack.create_tenant("outage")
    recipients = [new_email("outage") for _ in range(3)]
    smtp.stop()
    try:
        for email in recipients:
            mail_stack.invite(tenant.owner_token, email, "viewer")
        # Tried again and again, each failure recorded, nothing dropped: an outage
        # outlasts EMAIL_MAX_ATTEMPTS (3) without failing anything.
        for email in recipients:
            row = eventually(lambda email=email: (row := outbox_row(mail_stack, email))["attempts"] >= 5 and row)
            assert row["status"] == "queued" and row["payload"]["link"] and row["last_error"]
            assert "connect" in row["last_error"].lower()
    finally:
        smtp.start()
    for email in recipients:
        message = delivered(smtp, email)
        row = eventually(lambda email=email: (row := outbox_row(mail_stack, email))["status"] == "sent" and row)
        assert row["payload"] is None and row["last_error"] is None and row["attempts"] >= 2
        assert mail_stack.accept(message.token, full_name="After Outage", password=MEMBER_PASSWORD).tenant_slug


def test_a_permanent_refusal_fails_the_email_and_ends_its_attempts(mail_stack: Stack, smtp: SmtpServer) -> None:
    tenant = mail_stack.create_tenant("bounce")
    email = new_email("bounce")
    mail_stack.invite(tenant.owner_token, email, "viewer")
    row = eventually(lambda: (row := outbox_row(mail_stack, email))["status"] == "failed" and row)
    assert row["last_error"].startswith("550") and "No such mailbox" in row["last_error"]
    assert row["payload"] is None and row["next_attempt_at"] is None and row["sent_at"] is None
    # Retries here come every fraction of a second: none follows a 5xx.
    time.sleep(1.5)
    assert outbox_row(mail_stack, email)["attempts"] == 1
    assert smtp.to(email) == []


def test_a_temporary_refusal_is_retried_with_backoff_and_given_up_after_the_last_attempt(
    mail_stack: Stack, smtp: SmtpServer
) -> None:
    tenant = mail_stack.create_tenant("later")
    email = new_email("later")
    mail_stack.invite(tenant.owner_token, email, "viewer")
    queued = eventually(lambda: (row := outbox_row(mail_stack, email))["attempts"] >= 1 and row["last_error"] and row)
    assert queued["status"] == "queued" and queued["last_error"].startswith("451")
    assert queued["payload"]["link"] and queued["next_attempt_at"] is not None
    row = eventually(lambda: (row := outbox_row(mail_stack, email))["status"] == "failed" and row)
    assert row["attempts"] == 3 and row["last_error"].startswith("gave up after 3 attempts: 451")
    assert row["payload"] is None and row["next_attempt_at"] is None
    assert smtp.to(email) == []


def test_tenant_admins_read_only_their_tenants_delivery_log(
    mail_stack: Stack, smtp: SmtpServer, emails: emails_service_pb2_grpc.EmailServiceStub, mail_gateway: str
) -> None:
    a, b = mail_stack.create_tenant("log-a"), mail_stack.create_tenant("log-b")
    a_email, _ = join(mail_stack, smtp, a)
    b_email, _ = join(mail_stack, smtp, b)
    bounced = new_email("bounce")
    mail_stack.invite(a.owner_token, bounced, "viewer")
    eventually(lambda: outbox_row(mail_stack, bounced)["status"] == "failed")

    listed = emails.ListEmails(emails_service_pb2.ListEmailsRequest(), metadata=bearer(a.owner_token)).emails
    assert {entry.recipient for entry in listed} == {a_email, bounced}
    assert {entry.tenant_id for entry in listed} == {a.id}
    by_recipient = {entry.recipient: entry for entry in listed}
    sent, failed = by_recipient[a_email], by_recipient[bounced]
    assert sent.status == emails_service_pb2.EMAIL_STATUS_SENT and sent.HasField("sent_at")
    assert sent.template == "invitation" and sent.language == "en" and sent.attempts == 1
    assert failed.status == emails_service_pb2.EMAIL_STATUS_FAILED and failed.last_error.startswith("550")
    assert not failed.HasField("sent_at")

    rest = requests.get(
        f"{mail_gateway}/api/v1/tenants/me/emails", headers={"Authorization": f"Bearer {b.owner_token}"}
    )
    assert rest.status_code == 200, rest.text
    assert [entry["recipient"] for entry in rest.json()["emails"]] == [b_email]
    assert rest.json()["emails"][0]["status"] == "EMAIL_STATUS_SENT"
    # The log's fields only: no payload, link or token.
    assert set(rest.json()["emails"][0]) == LOG_FIELDS

    # Paged like every list: newest first, one at a time.
    first = emails.ListEmails(emails_service_pb2.ListEmailsRequest(page_size=1), metadata=bearer(a.owner_token))
    second = emails.ListEmails(
        emails_service_pb2.ListEmailsRequest(page_size=1, page_token=first.next_page_token),
        metadata=bearer(a.owner_token),
    )
    assert [first.emails[0].recipient, second.emails[0].recipient] == [bounced, a_email]
    assert second.next_page_token == ""


def test_reading_the_delivery_log_needs_emails_read(
    mail_stack: Stack, smtp: SmtpServer, emails: emails_service_pb2_grpc.EmailServiceStub, mail_gateway: str
) -> None:
    tenant = mail_stack.create_tenant("log-perm")
    _, viewer_token = join(mail_stack, smtp, tenant, "viewer")
    error = rpc_error(lambda: emails.ListEmails(emails_service_pb2.ListEmailsRequest(), metadata=bearer(viewer_token)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "emails.read" in error.details()
    rest = requests.get(f"{mail_gateway}/api/v1/tenants/me/emails", headers={"Authorization": f"Bearer {viewer_token}"})
    assert rest.status_code == 403
    # A tenant owner holds emails.read, never the operators' view.
    error = rpc_error(
        lambda: emails.ListAllEmails(emails_service_pb2.ListAllEmailsRequest(), metadata=bearer(tenant.owner_token))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "platform.emails.read" in error.details()


def test_operators_read_every_tenants_delivery_log(
    mail_stack: Stack, smtp: SmtpServer, emails: emails_service_pb2_grpc.EmailServiceStub, mail_gateway: str
) -> None:
    a, b = mail_stack.create_tenant("op-a"), mail_stack.create_tenant("op-b")
    a_email, _ = join(mail_stack, smtp, a)
    b_email, _ = join(mail_stack, smtp, b)
    operator = mail_stack.operator_token()
    listed = emails.ListAllEmails(emails_service_pb2.ListAllEmailsRequest(page_size=100), metadata=bearer(operator))
    tenants_of = {entry.recipient: entry.tenant_id for entry in listed.emails}
    assert tenants_of[a_email] == a.id and tenants_of[b_email] == b.id
    rest = requests.get(f"{mail_gateway}/api/v1/emails?page_size=100", headers={"Authorization": f"Bearer {operator}"})
    assert rest.status_code == 200, rest.text
    assert {a_email, b_email} <= {entry["recipient"] for entry in rest.json()["emails"]}
    # The operator's token names no tenant, so the tenant view is not theirs.
    error = rpc_error(lambda: emails.ListEmails(emails_service_pb2.ListEmailsRequest(), metadata=bearer(operator)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_row_level_security_keeps_each_tenants_emails_to_itself(mail_stack: Stack, smtp: SmtpServer) -> None:
    a, b = mail_stack.create_tenant("rls-a"), mail_stack.create_tenant("rls-b")
    join(mail_stack, smtp, a)
    join(mail_stack, smtp, b)
    seen_by_a = mail_stack.sql(
        "SELECT DISTINCT tenant_id::text FROM auth.email_outbox", role="tenantry_auth", tenant=a.id
    )
    assert seen_by_a == [(a.id,)]
    assert mail_stack.sql("SELECT count(*) FROM auth.email_outbox", role="tenantry_auth") == [(0,)]
    # The sender's cross-tenant view is a policy, not a privilege of the role.
    assert mail_stack.sql("SELECT rolbypassrls FROM pg_roles WHERE rolname = 'tenantry_auth'") == [(False,)]
    everyone = mail_stack.sql(
        "SELECT count(DISTINCT tenant_id) FROM auth.email_outbox WHERE tenant_id IN (%s, %s)",
        (a.id, b.id),
        role="tenantry_auth",
        tenant="email-sender",
    )
    assert everyone == [(2,)]


def test_two_senders_never_deliver_one_email_twice(mail_stack: Stack, smtp: SmtpServer) -> None:
    tenant = mail_stack.create_tenant("two-senders")
    address = f"127.0.0.1:{free_port()}"
    replica = ServiceProcess(
        "auth",
        address,
        {**mail_stack.processes["auth"].env, "AUTH_LISTEN_ADDR": address},
        log_path=mail_stack.log_dir / "auth-second-sender.log",
    )
    replica.start()
    try:
        replica.wait_serving()
        recipients = [new_email("pair") for _ in range(40)]
        # Queued while the server is down, so that both senders find them due at once when it returns.
        smtp.stop()
        try:
            for email in recipients:
                mail_stack.invite(tenant.owner_token, email, "viewer")
            eventually(lambda: all(outbox_row(mail_stack, email)["attempts"] >= 1 for email in recipients))
        finally:
            smtp.start()
        eventually(lambda: all(smtp.to(email) for email in recipients), timeout=30)
        time.sleep(1)  # any second delivery would have come by now
    finally:
        replica.stop()
    sent_by = {
        name: path.read_text().count('"message": "email sent"')
        for name, path in (("first", mail_stack.log_dir / "auth.log"), ("second", replica.log_path))
        if path is not None
    }
    print(f"emails sent per sender: {sent_by}")
    counts = {email: len(smtp.to(email)) for email in recipients}
    assert set(counts.values()) == {1}, counts
    rows = mail_stack.sql("SELECT status, attempts FROM auth.email_outbox WHERE recipient = ANY(%s)", (recipients,))
    assert len(rows) == 40 and {status for status, _ in rows} == {"sent"}
