"""The account lifecycle end to end over REST through the gateway, with a real
SMTP server: registration, verification, password reset and change, sessions,
and throttling in the auth service itself (gRPC too)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import jwt
import pytest
import requests

from tests.gateway.conftest import gateway_in_front
from tests.smtp_server import CaughtEmail, SmtpServer
from tests.stack import OWNER_PASSWORD, Stack, Tenant, eventually, own_stack, rpc_error

SENDER_ENV = {"EMAIL_POLL_SECONDS": "0.2", "PUBLIC_BASE_URL": "https://app.tenantry.test"}


@pytest.fixture(scope="module")
def accounts_stack(fresh_database: Any, smtp: SmtpServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(fresh_database(), tmp_path_factory.mktemp("accounts-stack"), {**smtp.env, **SENDER_ENV}) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(accounts_stack: Stack) -> Iterator[str]:
    with gateway_in_front(accounts_stack, "gateway-accounts") as url:
        yield url


def new_email(prefix: str = "person") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.test"


def caught(smtp: SmtpServer, recipient: str, subject_part: str) -> CaughtEmail:
    """The newest message to recipient whose subject holds subject_part, once it arrived."""
    found = eventually(lambda: [m for m in smtp.to(recipient) if subject_part in m.subject], timeout=15)
    return found[-1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(gateway: str, path: str, body: dict[str, Any], token: str | None = None) -> requests.Response:
    return requests.post(f"{gateway}{path}", json=body, headers=auth(token) if token else {}, timeout=30)


def login(gateway: str, email: str, password: str) -> requests.Response:
    return post(gateway, "/api/v1/auth/login", {"email": email, "password": password})


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def open_registration(gateway: str, stack: Stack, role_permissions: list[str]) -> Tenant:
    tenant = stack.create_tenant("muni")
    role = {"name": "citizen", "permissions": role_permissions}
    assert post(gateway, "/api/v1/tenants/me/roles", role, tenant.owner_token).status_code == 200
    opened = requests.patch(
        f"{gateway}/api/v1/tenants/me",
        params={"update_mask": "settings"},
        headers=auth(tenant.owner_token),
        json={"settings": {"registration": {"enabled": True, "default_role": "citizen"}}},
        timeout=30,
    )
    assert opened.status_code == 200, opened.text
    return tenant


def test_registration_verification_and_the_same_answer_for_a_registered_email(
    gateway: str, accounts_stack: Stack, smtp: SmtpServer
) -> None:
    tenant = open_registration(gateway, accounts_stack, ["app.reports.create"])
    email = new_email("citizen")
    body = {"tenant_slug": tenant.slug, "email": email, "full_name": "Thandi", "password": "citizen-pass-1"}
    registered = post(gateway, "/api/v1/auth/register", {**body, "preferred_language": "af"})
    assert registered.status_code == 200 and registered.json() == {}
    verification = caught(smtp, email, "e-posadres")  # Afrikaans, as asked
    assert verification.link.startswith("https://app.tenantry.test/verify-email?token=")

    tokens = login(gateway, email, "citizen-pass-1").json()
    assert claims_of(tokens["access_token"])["roles"] == ["citizen"]
    me = requests.get(f"{gateway}/api/v1/auth/me", headers=auth(tokens["access_token"]), timeout=30).json()
    assert me["email_verified"] is False
    assert post(gateway, "/api/v1/auth/email:verify", {"token": verification.token}).status_code == 200
    me = requests.get(f"{gateway}/api/v1/auth/me", headers=auth(tokens["access_token"]), timeout=30).json()
    assert me["email_verified"] is True
    assert post(gateway, "/api/v1/auth/email:verify", {"token": verification.token}).status_code == 401
    assert post(gateway, "/api/v1/auth/email:resend", {}, tokens["access_token"]).status_code == 400

    # The same email again: the same answer, no second account, the owner is told.
    again = post(gateway, "/api/v1/auth/register", {**body, "password": "someone-elses-pass"})
    assert again.status_code == 200 and again.json() == {}
    notice = caught(smtp, email, "probeer registreer")  # in the language the account chose
    assert "someone-elses-pass" not in notice.text
    assert accounts_stack.sql("SELECT count(*) FROM auth.users WHERE email = %s", (email,)) == [(1,)]
    assert login(gateway, email, "someone-elses-pass").status_code == 401
    assert login(gateway, email, "citizen-pass-1").status_code == 200


def test_registration_is_refused_where_it_is_off_and_never_grants_tenantry_powers(
    gateway: str, accounts_stack: Stack
) -> None:
    closed = accounts_stack.create_tenant("closed")
    body = {"email": new_email(), "full_name": "X", "password": "some-password-1"}
    off = post(gateway, "/api/v1/auth/register", {**body, "tenant_slug": closed.slug})
    unknown = post(gateway, "/api/v1/auth/register", {**body, "tenant_slug": "no-such-tenant"})
    assert off.status_code == unknown.status_code == 403 and off.json()["message"] == unknown.json()["message"]
    for role in ("admin", "viewer"):
        refused = requests.patch(
            f"{gateway}/api/v1/tenants/me",
            params={"update_mask": "settings"},
            headers=auth(closed.owner_token),
            json={"settings": {"registration": {"enabled": True, "default_role": role}}},
            timeout=30,
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["message"].startswith("tenant.settings.registration.default_role:")
    settings = requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(closed.owner_token), timeout=30).json()
    assert "registration" not in settings.get("settings", {})


def test_password_reset_by_email_revokes_every_session_and_proves_the_email(
    gateway: str, accounts_stack: Stack, smtp: SmtpServer
) -> None:
    tenant = accounts_stack.create_tenant("reset")
    old = login(gateway, tenant.owner_email, OWNER_PASSWORD).json()
    unknown = post(gateway, "/api/v1/auth/password:forgot", {"email": new_email("nobody")})
    known = post(gateway, "/api/v1/auth/password:forgot", {"email": tenant.owner_email})
    assert unknown.status_code == known.status_code == 200 and unknown.json() == known.json() == {}
    message = caught(smtp, tenant.owner_email, "Reset your")
    assert message.link.startswith("https://app.tenantry.test/reset-password?token=")
    assert (
        post(gateway, "/api/v1/auth/password:reset", {"token": message.token, "new_password": "x"}).status_code == 400
    )
    reset = post(gateway, "/api/v1/auth/password:reset", {"token": message.token, "new_password": "brand-new-pass"})
    assert reset.status_code == 200
    assert post(gateway, "/api/v1/auth/refresh", {"refresh_token": old["refresh_token"]}).status_code == 401
    refused = eventually(
        lambda: (
            requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(old["access_token"]), timeout=30).status_code
            == 401
        ),
        timeout=1.5,
    )
    assert refused
    assert login(gateway, tenant.owner_email, OWNER_PASSWORD).status_code == 401
    fresh = login(gateway, tenant.owner_email, "brand-new-pass").json()
    me = requests.get(f"{gateway}/api/v1/auth/me", headers=auth(fresh["access_token"]), timeout=30).json()
    assert me["email_verified"] is True
    assert caught(smtp, tenant.owner_email, "was changed")
    reused = post(gateway, "/api/v1/auth/password:reset", {"token": message.token, "new_password": "another-pass-1"})
    assert reused.status_code == 401


def test_a_reset_token_expires_and_a_forged_one_is_refused(
    gateway: str, accounts_stack: Stack, smtp: SmtpServer
) -> None:
    tenant = accounts_stack.create_tenant("expire")
    post(gateway, "/api/v1/auth/password:forgot", {"email": tenant.owner_email})
    token = caught(smtp, tenant.owner_email, "Reset your").token
    user_id = claims_of(tenant.owner_token)["sub"]
    accounts_stack.sql(
        "UPDATE auth.account_tokens SET expires_at = now() - interval '1 second' WHERE user_id = %s", (user_id,)
    )
    expired = post(gateway, "/api/v1/auth/password:reset", {"token": token, "new_password": "new-password-1"})
    assert expired.status_code == 401
    for forged in (f"{uuid.uuid4().hex}.{token.split('.')[1]}", token[:-3] + "abc", "garbage"):
        answer = post(gateway, "/api/v1/auth/password:reset", {"token": forged, "new_password": "new-password-1"})
        assert answer.status_code == 401 and answer.json()["message"] == expired.json()["message"], forged


def test_changing_the_password_ends_the_other_sessions_and_sends_a_notice(
    gateway: str, accounts_stack: Stack, smtp: SmtpServer
) -> None:
    tenant = accounts_stack.create_tenant("change")
    other = login(gateway, tenant.owner_email, OWNER_PASSWORD).json()
    current = login(gateway, tenant.owner_email, OWNER_PASSWORD).json()
    wrong = post(
        gateway,
        "/api/v1/auth/password:change",
        {"current_password": "not-it-at-all", "new_password": "changed-pass-1"},
        current["access_token"],
    )
    assert wrong.status_code == 401
    changed = post(
        gateway,
        "/api/v1/auth/password:change",
        {"current_password": OWNER_PASSWORD, "new_password": "changed-pass-1"},
        current["access_token"],
    )
    assert changed.status_code == 200 and changed.json()["sessions_revoked"] >= 2  # `other` and the fixture's
    assert post(gateway, "/api/v1/auth/refresh", {"refresh_token": other["refresh_token"]}).status_code == 401
    assert post(gateway, "/api/v1/auth/refresh", {"refresh_token": current["refresh_token"]}).status_code == 200
    assert caught(smtp, tenant.owner_email, "was changed")
    assert login(gateway, tenant.owner_email, "changed-pass-1").status_code == 200


def test_a_person_lists_and_ends_their_sessions_and_an_admin_ends_a_members(
    gateway: str, accounts_stack: Stack, smtp: SmtpServer
) -> None:
    tenant = accounts_stack.create_tenant("sessions")
    phone = requests.post(
        f"{gateway}/api/v1/auth/login",
        json={"email": tenant.owner_email, "password": OWNER_PASSWORD},
        headers={"User-Agent": "PhoneApp/1.0"},
        timeout=30,
    ).json()
    laptop = login(gateway, tenant.owner_email, OWNER_PASSWORD).json()
    listed = requests.get(f"{gateway}/api/v1/auth/sessions", headers=auth(laptop["access_token"]), timeout=30).json()
    sessions = listed["sessions"]
    assert len(sessions) >= 3 and [s.get("current", False) for s in sessions].count(True) == 1
    phone_sid = claims_of(phone["access_token"])["sid"]
    phone_session = next(s for s in sessions if s["id"] == phone_sid)
    assert phone_session["user_agent"] == "PhoneApp/1.0" and phone_session["ip_address"] == "127.0.0.1"
    assert phone_session["tenant_slug"] == tenant.slug
    ended = requests.delete(
        f"{gateway}/api/v1/auth/sessions/{phone_sid}", headers=auth(laptop["access_token"]), timeout=30
    )
    assert ended.status_code == 200
    assert post(gateway, "/api/v1/auth/refresh", {"refresh_token": phone["refresh_token"]}).status_code == 401
    refused = eventually(
        lambda: (
            requests.get(f"{gateway}/api/v1/tenants/me", headers=auth(phone["access_token"]), timeout=30).status_code
            == 401
        ),
        timeout=1.0,
    )
    assert refused  # the ended session's access token, within a second
    foreign = requests.delete(
        f"{gateway}/api/v1/auth/sessions/{uuid.uuid4()}", headers=auth(laptop["access_token"]), timeout=30
    )
    assert foreign.status_code == 404
    others = post(gateway, "/api/v1/auth/sessions:revokeOthers", {}, laptop["access_token"])
    assert others.status_code == 200 and others.json()["sessions_revoked"] >= 1
    left = requests.get(f"{gateway}/api/v1/auth/sessions", headers=auth(laptop["access_token"]), timeout=30).json()
    assert [s["id"] for s in left["sessions"]] == [claims_of(laptop["access_token"])["sid"]]

    member_email = new_email("member")
    accounts_stack.invite(laptop["access_token"], member_email, "viewer")
    invitation = caught(smtp, member_email, "invited")
    member = accounts_stack.accept(invitation.token, full_name="Member", password="member-pass-1").tokens
    member_id = claims_of(member.access_token)["sub"]
    revoked = post(gateway, f"/api/v1/tenants/me/members/{member_id}:revokeSessions", {}, laptop["access_token"])
    assert revoked.status_code == 200 and revoked.json()["sessions_revoked"] == 1
    assert post(gateway, "/api/v1/auth/refresh", {"refresh_token": member.refresh_token}).status_code == 401


def test_a_login_forgives_the_failures_on_record_and_only_then_they_count_afresh(accounts_stack: Stack) -> None:
    tenant = accounts_stack.create_tenant("forgiven")
    for _round in range(2):
        for _ in range(4):  # one short of the block, twice: the success between them forgives the first four
            error = rpc_error(lambda: accounts_stack.login(tenant.owner_email, "wrong-password-1"))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        accounts_stack.login(tenant.owner_email, OWNER_PASSWORD)
    # Without forgiveness the fifth failure would have blocked the account: a fifth now does.
    for _ in range(5):
        rpc_error(lambda: accounts_stack.login(tenant.owner_email, "wrong-password-1"))
    blocked = rpc_error(lambda: accounts_stack.login(tenant.owner_email, OWNER_PASSWORD))
    assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_failed_logins_are_throttled_per_account_over_grpc_and_rest(gateway: str, accounts_stack: Stack) -> None:
    tenant = accounts_stack.create_tenant("throttle")
    for _ in range(5):
        error = rpc_error(lambda: accounts_stack.login(tenant.owner_email, "wrong-password-1"))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    blocked = rpc_error(lambda: accounts_stack.login(tenant.owner_email, OWNER_PASSWORD))
    assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(dict(blocked.trailing_metadata())["retry-after"]) >= 1  # type: ignore[attr-defined]
    rest = login(gateway, tenant.owner_email, OWNER_PASSWORD)
    assert rest.status_code == 429 and 1 <= int(rest.headers["Retry-After"]) <= 30
    # An email nobody has is throttled exactly the same way.
    nobody = new_email("nobody")
    for _ in range(5):
        assert login(gateway, nobody, "wrong-password-1").status_code == 401
    assert login(gateway, nobody, "wrong-password-1").status_code == 429
    # Another account is not affected.
    other = accounts_stack.create_tenant("unaffected")
    assert login(gateway, other.owner_email, OWNER_PASSWORD).status_code == 200


def test_a_success_resets_the_count_and_the_delay_grows(accounts_stack: Stack) -> None:
    tenant = accounts_stack.create_tenant("count")
    for _ in range(4):
        rpc_error(lambda: accounts_stack.login(tenant.owner_email, "wrong-password-1"))
    assert accounts_stack.login(tenant.owner_email, OWNER_PASSWORD).access_token
    for _ in range(4):
        assert rpc_error(lambda: accounts_stack.login(tenant.owner_email, "wrong-password-1")).code() == (
            grpc.StatusCode.UNAUTHENTICATED
        )
    key_rows = accounts_stack.sql("SELECT hits FROM auth.throttles WHERE key LIKE 'login:%%' AND hits = 4")
    assert key_rows  # counted under a hash, never the email itself
    assert not accounts_stack.sql("SELECT 1 FROM auth.throttles WHERE key LIKE %s", (f"%{tenant.owner_email}%",))
    rpc_error(lambda: accounts_stack.login(tenant.owner_email, "wrong-password-1"))  # the fifth blocks
    first = int(
        dict(rpc_error(lambda: accounts_stack.login(tenant.owner_email, OWNER_PASSWORD)).trailing_metadata())[
            "retry-after"
        ]
    )  # type: ignore[attr-defined]
    accounts_stack.sql("UPDATE auth.throttles SET blocked_until = now() WHERE key LIKE 'login:%%' AND hits = 5")
    time.sleep(0.05)
    rpc_error(lambda: accounts_stack.login(tenant.owner_email, "wrong-password-1"))  # the sixth blocks longer
    second = int(
        dict(rpc_error(lambda: accounts_stack.login(tenant.owner_email, OWNER_PASSWORD)).trailing_metadata())[
            "retry-after"
        ]
    )  # type: ignore[attr-defined]
    assert second > first


def test_reset_requests_are_throttled_per_email(gateway: str, accounts_stack: Stack, smtp: SmtpServer) -> None:
    email = new_email("flood")
    answers = [post(gateway, "/api/v1/auth/password:forgot", {"email": email}).status_code for _ in range(6)]
    assert answers == [200] * 5 + [429]


def test_a_person_reads_their_own_account_events_and_nobody_elses(
    gateway: str, accounts_stack: Stack, smtp: SmtpServer
) -> None:
    tenant = accounts_stack.create_tenant("events")
    colleague = new_email("colleague")
    accounts_stack.invite(tenant.owner_token, colleague, "admin")
    member = accounts_stack.accept(
        caught(smtp, colleague, "invited").token, full_name="C", password="colleague-1"
    ).tokens
    assert login(gateway, tenant.owner_email, "wrong-password-1").status_code == 401
    token = login(gateway, tenant.owner_email, OWNER_PASSWORD).json()["access_token"]
    owner_id = claims_of(token)["sub"]

    def mine() -> list[dict[str, Any]]:
        reply = requests.get(f"{gateway}/api/v1/auth/me/events", headers=auth(token), timeout=30)
        assert reply.status_code == 200, reply.text
        return list(reply.json().get("events", []))

    events = eventually(
        lambda: {e["action"] for e in mine()} >= {"auth.login.failed", "auth.login.succeeded"} and mine(), timeout=15
    )
    assert {e["user_id"] for e in events} == {owner_id}
    failed = next(e for e in events if e["action"] == "auth.login.failed")
    assert failed["details"]["category"] == "auth" and failed["details"]["outcome"] == "failure"
    assert failed["details"]["reason"] == "bad_password"
    # The colleague sees only their own, and a tenant admin filters the tenant's by category.
    theirs = requests.get(f"{gateway}/api/v1/auth/me/events", headers=auth(member.access_token), timeout=30).json()
    assert owner_id not in {e["user_id"] for e in theirs.get("events", [])}
    tenant_auth = requests.get(
        f"{gateway}/api/v1/audit/events", params={"category": "auth"}, headers=auth(token), timeout=30
    ).json()["events"]
    assert tenant_auth and all(e["details"]["category"] == "auth" for e in tenant_auth)


def test_a_tenant_names_the_sender_and_product_of_its_emails(
    gateway: str, accounts_stack: Stack, smtp: SmtpServer
) -> None:
    tenant = accounts_stack.create_tenant("brand")

    def set_email_settings(email_settings: dict[str, Any]) -> requests.Response:
        return requests.patch(
            f"{gateway}/api/v1/tenants/me",
            params={"update_mask": "settings"},
            headers=auth(tenant.owner_token),
            json={"settings": {"email": email_settings}},
            timeout=30,
        )

    injected = set_email_settings({"sender_name": "Evil\r\nBcc: victim@example.test"})
    assert injected.status_code == 400
    assert injected.json()["message"].startswith("tenant.settings.email.sender_name:")
    assert set_email_settings({"sender_name": "City of Joburg", "product_name": "e-Services"}).status_code == 200
    invitee = new_email("branded")
    accounts_stack.invite(tenant.owner_token, invitee, "viewer")
    message = caught(smtp, invitee, "e-Services")
    assert "City of Joburg" in str(message.message["From"])
