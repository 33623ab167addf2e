"""The SMTP client speaks STARTTLS and implicit TLS, and trusts only the certificates it should:
the real client against a real TLS server on loopback."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.auth.mail.smtp import Delivery, Outcome, SmtpSettings, SmtpTransport
from tests.smtp_server import SmtpServer
from tests.stack import eventually


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate, key) as PEM files."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = folder / "server.pem", folder / "server.key"
    certificate_path.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate_path, key_path


@pytest.fixture(params=["starttls", "tls"])
def tls_server(request: pytest.FixtureRequest, certificate: tuple[Path, Path]) -> Iterator[SmtpServer]:
    server = SmtpServer(request.param, certificate)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def send(
    server: SmtpServer, recipient: str, *, ca_file: Path | None, tls: Literal["none", "starttls", "tls"]
) -> Delivery:
    message = EmailMessage()
    message["From"] = "no-reply@tenantry.test"
    message["To"] = recipient
    message["Subject"] = "over TLS"
    message.set_content("hello")
    settings = SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        username=None,
        password=None,
        tls=tls,
        timeout=5,
        ca_file=str(ca_file) if ca_file else None,
    )
    (delivery,) = asyncio.run(SmtpTransport(settings).send_all([message]))
    return delivery


def test_the_client_delivers_over_the_servers_tls_mode(tls_server: SmtpServer, certificate: tuple[Path, Path]) -> None:
    recipient = f"tls-{uuid.uuid4().hex[:8]}@example.test"
    assert send(tls_server, recipient, ca_file=certificate[0], tls=tls_server.tls) == Delivery(Outcome.SENT)
    assert eventually(lambda: tls_server.to(recipient))[0].subject == "over TLS"


def test_an_untrusted_certificate_is_refused_and_the_email_waits(tls_server: SmtpServer) -> None:
    recipient = f"untrusted-{uuid.uuid4().hex[:8]}@example.test"
    delivery = send(tls_server, recipient, ca_file=None, tls=tls_server.tls)
    assert delivery.outcome is Outcome.RETRY and not delivery.answered
    assert "certificate" in (delivery.error or "").lower()
    assert tls_server.to(recipient) == []


def test_plain_text_to_a_server_requiring_starttls_waits_for_the_setup_to_be_fixed(
    certificate: tuple[Path, Path],
) -> None:
    server = SmtpServer("starttls", certificate)
    server.start()
    try:
        recipient = f"plain-{uuid.uuid4().hex[:8]}@example.test"
        delivery = send(server, recipient, ca_file=certificate[0], tls="none")
    finally:
        server.stop()
    # 530, "STARTTLS first": SMTP_TLS is wrong, not the message, so it is not failed for good
    # and that alone never fails it.
    assert delivery.outcome is Outcome.RETRY and not delivery.answered
    assert (delivery.error or "").startswith("530")
    assert server.to(recipient) == []


def test_empty_smtp_settings_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # As compose and env files write them: an empty login must not be tried.
    from services.auth.settings import AuthSettings

    for name, value in {
        "DATABASE_URL": "postgresql://user@127.0.0.1/db",
        "INTERNAL_API_TOKEN": "0123456789abcdef0",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "",
        "SMTP_USERNAME": "",
        "SMTP_PASSWORD": "",
        "SMTP_CA_FILE": "",
    }.items():
        monkeypatch.setenv(name, value)
    settings = AuthSettings()
    assert (settings.smtp_port, settings.smtp_username, settings.smtp_password, settings.smtp_ca_file) == (
        None,
        None,
        None,
        None,
    )
    assert settings.smtp_host == "127.0.0.1"
