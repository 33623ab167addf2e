"""Invitations: emailed, single-use, expiring, stored hashed, and bound only
to the account that proves the email."""

from __future__ import annotations

import hashlib
import uuid

import grpc
import jwt
import pytest
from tenantry.auth.v1 import auth_pb2, auth_service_pb2, members_service_pb2

from tests.stack import MEMBER_PASSWORD, OWNER_PASSWORD, Stack, Tenant, bearer, rpc_error

FAILED = "invitation token is invalid, expired, used or revoked"


def new_email(prefix: str = "inv") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.test"


def claims_of(token: str) -> dict:  # type: ignore[type-arg]
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    return stack.create_tenant("inv")


def test_a_new_person_joins_with_their_own_name_and_password(stack: Stack, tenant: Tenant) -> None:
    email = new_email()
    invitation = stack.invite(tenant.owner_token, email, "viewer")
    assert invitation.status == auth_pb2.INVITATION_STATUS_PENDING and invitation.role == "viewer"
    accepted = stack.accept(stack.invitation_token(email), full_name="New Person", password=MEMBER_PASSWORD)
    assert accepted.tenant_id == tenant.id and accepted.tenant_slug == tenant.slug and accepted.role == "viewer"
    assert claims_of(accepted.tokens.access_token)["tid"] == tenant.id
    assert claims_of(stack.login(email, MEMBER_PASSWORD).access_token)["roles"] == ["viewer"]
    members = stack.members.ListMembers(members_service_pb2.ListMembersRequest(), metadata=bearer(tenant.owner_token))
    joined = next(member for member in members.members if member.email == email)
    assert joined.full_name == "New Person" and joined.joined_via == "invitation"
    assert joined.invited_by == claims_of(tenant.owner_token)["sub"] and joined.HasField("last_login_at")
    listed = stack.members.ListInvitations(
        members_service_pb2.ListInvitationsRequest(), metadata=bearer(tenant.owner_token)
    )
    assert next(i for i in listed.invitations if i.id == invitation.id).status == auth_pb2.INVITATION_STATUS_ACCEPTED


def test_a_verified_person_proves_it_by_password_or_access_token(stack: Stack, tenant: Tenant) -> None:
    email = new_email("verified")
    stack.add_member(stack.create_tenant("home"), email)  # verified by accepting that invitation
    stack.invite(tenant.owner_token, email, "admin")
    token = stack.invitation_token(email)
    wrong = rpc_error(lambda: stack.accept(token, password="not-their-password"))
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    accepted = stack.accept(token, password=MEMBER_PASSWORD)
    assert accepted.role == "admin"
    # By access token, for a third tenant; the name given is ignored for a verified account.
    third = stack.create_tenant("third")
    stack.invite(third.owner_token, email, "viewer")
    session = stack.login(email, MEMBER_PASSWORD, tenant.slug)
    joined = stack.accept(stack.invitation_token(email), full_name="Renamed?", access_token=session.access_token)
    assert joined.tenant_id == third.id
    assert stack.sql("SELECT full_name FROM auth.users WHERE email = %s", (email,)) == [("A Member",)]


def test_a_token_works_once(stack: Stack, tenant: Tenant) -> None:
    email = new_email()
    stack.invite(tenant.owner_token, email)
    token = stack.invitation_token(email)
    stack.accept(token, full_name="Once", password=MEMBER_PASSWORD)
    again = rpc_error(lambda: stack.accept(token, full_name="Twice", password="another-password"))
    assert again.code() == grpc.StatusCode.UNAUTHENTICATED and again.details() == FAILED


def test_an_expired_invitation_is_refused_until_resent(stack: Stack, tenant: Tenant) -> None:
    email = new_email()
    invitation = stack.invite(tenant.owner_token, email)
    token = stack.invitation_token(email)
    stack.sql("UPDATE auth.invitations SET expires_at = now() - interval '1 second' WHERE id = %s", (invitation.id,))
    expired = rpc_error(lambda: stack.accept(token, full_name="Late", password=MEMBER_PASSWORD))
    assert expired.code() == grpc.StatusCode.UNAUTHENTICATED and expired.details() == FAILED
    resent = stack.members.ResendInvitation(
        members_service_pb2.ResendInvitationRequest(invitation_id=invitation.id), metadata=bearer(tenant.owner_token)
    )
    assert resent.status == auth_pb2.INVITATION_STATUS_PENDING
    new_token = stack.invitation_token(email)
    assert new_token != token
    assert rpc_error(lambda: stack.accept(token, full_name="Late", password=MEMBER_PASSWORD)).details() == FAILED
    assert stack.accept(new_token, full_name="Late", password=MEMBER_PASSWORD).tenant_id == tenant.id


def test_a_revoked_or_replaced_invitation_is_refused(stack: Stack, tenant: Tenant) -> None:
    email = new_email()
    first = stack.invite(tenant.owner_token, email)
    first_token = stack.invitation_token(email)
    second = stack.invite(tenant.owner_token, email, "viewer")
    assert second.id != first.id
    assert rpc_error(lambda: stack.accept(first_token, full_name="X", password=MEMBER_PASSWORD)).details() == FAILED
    second_token = stack.invitation_token(email)
    revoked = stack.members.RevokeInvitation(
        members_service_pb2.RevokeInvitationRequest(invitation_id=second.id), metadata=bearer(tenant.owner_token)
    )
    assert revoked.status == auth_pb2.INVITATION_STATUS_REVOKED
    assert rpc_error(lambda: stack.accept(second_token, full_name="X", password=MEMBER_PASSWORD)).details() == FAILED
    assert stack.sql("SELECT count(*) FROM auth.users WHERE email = %s", (email,)) == [(0,)]


def test_another_account_cannot_accept(stack: Stack, tenant: Tenant) -> None:
    email = new_email()
    stack.invite(tenant.owner_token, email)
    token = stack.invitation_token(email)
    intruder = stack.create_tenant("intruder")
    error = rpc_error(
        lambda: stack.accept(token, full_name="Me", password=MEMBER_PASSWORD, access_token=intruder.owner_token)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # The invitation is still good for its owner.
    assert stack.accept(token, full_name="Rightful", password=MEMBER_PASSWORD).tenant_id == tenant.id


def test_a_forged_or_tampered_token_is_refused_the_same_way(stack: Stack, tenant: Tenant) -> None:
    email = new_email()
    stack.invite(tenant.owner_token, email)
    token = stack.invitation_token(email)
    scope, _, secret = token.partition(".")
    for forged in (f"{scope}.{secret[:-2]}xx", f"{uuid.uuid4().hex}.{secret}", "garbage", f"{scope}.", "." * 300):
        error = rpc_error(lambda f=forged: stack.accept(f, full_name="F", password=MEMBER_PASSWORD))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details() == FAILED, forged


def test_tokens_are_stored_only_as_hashes(stack: Stack, tenant: Tenant) -> None:
    email = new_email()
    invitation = stack.invite(tenant.owner_token, email)
    token = stack.invitation_token(email)
    stored = stack.sql("SELECT token_hash FROM auth.invitations WHERE id = %s", (invitation.id,))[0][0]
    assert bytes(stored) == hashlib.sha256(token.encode()).digest()
    secret = token.partition(".")[2]
    for table in ("auth.invitations", "auth.outbox"):
        dumped = stack.sql(f"SELECT string_agg(t::text, ' ') FROM {table} t")[0][0] or ""
        assert secret not in dumped, table
    # The inviter's answer never carries it.
    assert secret not in str(invitation)


def test_a_member_is_not_invited_again_and_a_removed_one_may_be(stack: Stack, tenant: Tenant) -> None:
    email = new_email()
    tokens = stack.add_member(tenant, email, "viewer")
    again = rpc_error(lambda: stack.invite(tenant.owner_token, email))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    user_id = claims_of(tokens.access_token)["sub"]
    stack.members.RemoveMember(
        members_service_pb2.RemoveMemberRequest(user_id=user_id), metadata=bearer(tenant.owner_token)
    )
    stack.invite(tenant.owner_token, email, "admin")
    rejoined = stack.accept(stack.invitation_token(email), password=MEMBER_PASSWORD)
    assert rejoined.role == "admin"
    assert claims_of(stack.login(email, MEMBER_PASSWORD, tenant.slug).access_token)["roles"] == ["admin"]


@pytest.mark.parametrize(
    ("email", "role", "field", "code"),
    [
        ("not-an-email", "admin", "email", grpc.StatusCode.INVALID_ARGUMENT),
        ("", "admin", "email", grpc.StatusCode.INVALID_ARGUMENT),
        ("ok@example.test", "", "role", grpc.StatusCode.INVALID_ARGUMENT),
        ("ok@example.test", "No Such Role", "role", grpc.StatusCode.INVALID_ARGUMENT),
        ("ok@example.test", "ghost_role", "role", grpc.StatusCode.NOT_FOUND),
    ],
)
def test_bad_invitations_name_the_field(
    stack: Stack, tenant: Tenant, email: str, role: str, field: str, code: grpc.StatusCode
) -> None:
    error = rpc_error(lambda: stack.invite(tenant.owner_token, email, role))
    assert error.code() == code and error.details().startswith(f"{field}:")


def test_a_new_persons_bad_name_or_password_is_refused_and_the_token_survives(stack: Stack, tenant: Tenant) -> None:
    email = new_email()
    stack.invite(tenant.owner_token, email)
    token = stack.invitation_token(email)
    for full_name, password, field in (("", MEMBER_PASSWORD, "full_name"), ("Name", "short", "password")):
        error = rpc_error(lambda n=full_name, p=password: stack.accept(token, full_name=n, password=p))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith(f"{field}:")
    assert stack.accept(token, full_name="Name", password=MEMBER_PASSWORD).role == "admin"


def test_owner_provisioned_accounts_stay_unverified_until_proven(stack: Stack) -> None:
    tenant = stack.create_tenant("unverified")
    token = stack.login(tenant.owner_email, OWNER_PASSWORD).access_token
    me = stack.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(token))
    assert me.email_verified is False
