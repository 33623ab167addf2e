"""The takeovers found against the landed code: nobody binds, names or
changes an identity they do not control."""

from __future__ import annotations

import uuid

import bcrypt
import grpc
import jwt
from tenantry.auth.v1 import auth_service_pb2, members_service_pb2
from tenantry.tenants.v1 import tenants_pb2, tenants_service_pb2

from tests.stack import OWNER_PASSWORD, Stack, bearer, rpc_error

ATTACKER_PASSWORD = "attacker-chose-this"


def claims_of(token: str) -> dict:  # type: ignore[type-arg]
    return jwt.decode(token, options={"verify_signature": False})


def create_tenant_for(stack: Stack, email: str, password: str) -> tenants_pb2.Tenant:
    slug = f"newco-{uuid.uuid4().hex[:8]}"
    return stack.tenants.CreateTenant(
        tenants_service_pb2.CreateTenantRequest(
            name="NewCo",
            slug=slug,
            owner=tenants_service_pb2.TenantOwner(email=email, full_name="The CEO", password=password),
        ),
        metadata=bearer(stack.operator_token()),
        timeout=30,
    )


def test_an_admin_cannot_precreate_the_future_owner_of_another_tenant(stack: Stack) -> None:
    attacker = stack.create_tenant("evil")
    ceo = f"ceo-{uuid.uuid4().hex[:8]}@newco.test"
    # Once this created ceo's identity with the attacker's password; now it is only an invitation.
    stack.invite(attacker.owner_token, ceo, "viewer")
    assert stack.sql("SELECT count(*) FROM auth.users WHERE email = %s", (ceo,))[0][0] == 0
    newco = create_tenant_for(stack, ceo, OWNER_PASSWORD)
    assert newco.owner_status == tenants_pb2.OWNER_STATUS_ACTIVE
    refused = rpc_error(lambda: stack.login(ceo, ATTACKER_PASSWORD, newco.slug))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    # The operator's password is the one that works, for the operator's tenant.
    assert claims_of(stack.login(ceo, OWNER_PASSWORD, newco.slug).access_token)["tid"] == newco.id


def test_a_squatted_unverified_account_cannot_capture_the_owner_invitation(stack: Stack) -> None:
    """The squatter holds an unverified account for the CEO's email (as the old
    AddTenantAdmin made them, and migrated data still has them)."""
    attacker = stack.create_tenant("squat")
    ceo = f"ceo-{uuid.uuid4().hex[:8]}@newco.test"
    squatted = uuid.uuid4()
    stack.sql(
        "INSERT INTO auth.users (id, email, full_name, password_hash, created_at, updated_at) "
        "VALUES (%s, %s, 'Squatter Name', %s, now(), now())",
        (squatted, ceo, bcrypt.hashpw(ATTACKER_PASSWORD.encode(), bcrypt.gensalt(4)).decode()),
    )
    stack.sql(
        "INSERT INTO auth.memberships (id, tenant_id, user_id, role, status, joined_via, created_at) "
        "VALUES (%s, %s, %s, 'viewer', 'active', 'migration', now())",
        (uuid.uuid4(), attacker.id, squatted),
    )
    squatter_session = stack.login(ceo, ATTACKER_PASSWORD)

    newco = create_tenant_for(stack, ceo, "operator-chosen-password")
    assert newco.owner_status == tenants_pb2.OWNER_STATUS_INVITED
    # Neither the operator's password nor the squatter's opens NewCo before acceptance.
    for password in ("operator-chosen-password", ATTACKER_PASSWORD):
        error = rpc_error(lambda p=password: stack.login(ceo, p, newco.slug))
        assert error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    # Holding the unverified account's password is not proof of the email.
    token = stack.invitation_token(ceo)
    assert rpc_error(lambda: stack.accept(token, password=ATTACKER_PASSWORD)).code() == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert rpc_error(lambda: stack.accept(token, access_token=squatter_session.access_token)).code() == (
        grpc.StatusCode.INVALID_ARGUMENT
    )

    # The email's owner accepts through the link: new name, new password, the squatter is out.
    accepted = stack.accept(token, full_name="The Real CEO", password="ceo-own-password")
    assert accepted.tenant_id == newco.id and accepted.role == "owner"
    assert rpc_error(lambda: stack.login(ceo, ATTACKER_PASSWORD)).code() == grpc.StatusCode.UNAUTHENTICATED
    refresh = rpc_error(lambda: stack.auth.Refresh(_refresh(squatter_session.refresh_token)))
    assert refresh.code() == grpc.StatusCode.UNAUTHENTICATED
    row = stack.sql("SELECT full_name, email_verified_at IS NOT NULL FROM auth.users WHERE id = %s", (squatted,))
    assert row == [("The Real CEO", True)]
    assert claims_of(stack.login(ceo, "ceo-own-password", newco.slug).access_token)["roles"] == ["owner"]


def _refresh(token: str) -> auth_service_pb2.RefreshRequest:
    return auth_service_pb2.RefreshRequest(refresh_token=token)


def test_inviting_anyone_answers_the_same_and_reveals_no_one(stack: Stack) -> None:
    """Unknown, registered elsewhere, and already invited: one answer shape,
    no name or id of the person, and the registered person's login unchanged."""
    inviter = stack.create_tenant("inviter")
    victim = stack.create_tenant("victim")
    victim_id = claims_of(victim.owner_token)["sub"]
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.test"
    answers = {
        "unknown": stack.invite(inviter.owner_token, unknown),
        "registered": stack.invite(inviter.owner_token, victim.owner_email),
        "already_invited": stack.invite(inviter.owner_token, unknown),
    }
    shapes = set()
    for name, answer in answers.items():
        assert victim_id not in str(answer) and "Owner Person" not in str(answer), name
        assert answer.invited_by == claims_of(inviter.owner_token)["sub"]
        fields = tuple(sorted(field.name for field, _ in answer.ListFields()))
        shapes.add((answer.role, answer.status, fields))
    assert len(shapes) == 1
    listed = stack.members.ListMembers(members_service_pb2.ListMembersRequest(), metadata=bearer(inviter.owner_token))
    assert victim.owner_email not in {member.email for member in listed.members}
    # The victim still logs in without naming a tenant, to their own.
    assert claims_of(stack.login(victim.owner_email, OWNER_PASSWORD).access_token)["tid"] == victim.id


def test_the_operator_learns_a_registered_owner_was_invited_not_bound(stack: Stack) -> None:
    existing = stack.create_tenant("first")
    newco = create_tenant_for(stack, existing.owner_email, "a-password-never-applied")
    assert newco.owner_status == tenants_pb2.OWNER_STATUS_INVITED
    assert rpc_error(lambda: stack.login(existing.owner_email, "a-password-never-applied")).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    # Login to NewCo says why it is refused: the invitation waits.
    error = rpc_error(lambda: stack.login(existing.owner_email, OWNER_PASSWORD, newco.slug))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    # The owner's account is unverified (made by the operator's CreateTenant), so
    # the invitation says "not a member"; a verified one would be told it waits.
    assert newco.slug in error.details()
    # The tenant has a pending owner invitation, so it is never ownerless.
    rows = stack.sql(
        "SELECT role FROM auth.invitations WHERE tenant_id = %s AND accepted_at IS NULL AND revoked_at IS NULL",
        (newco.id,),
    )
    assert rows == [("owner",)]
