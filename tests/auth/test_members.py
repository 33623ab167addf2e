"""Members: listing, last-owner protection, and login for people in several tenants."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import jwt
from tenantry.auth.v1 import auth_pb2, auth_service_pb2, members_service_pb2

from tests.stack import MEMBER_PASSWORD, OWNER_PASSWORD, Stack, Tenant, bearer, rpc_error


def claims_of(token: str) -> dict:  # type: ignore[type-arg]
    return jwt.decode(token, options={"verify_signature": False})


def update(stack: Stack, token: str, user_id: str, **fields: object) -> auth_pb2.Member:
    return stack.members.UpdateMember(
        members_service_pb2.UpdateMemberRequest(user_id=user_id, **fields),  # type: ignore[arg-type]
        metadata=bearer(token),
    )


def owner_id(tenant: Tenant) -> str:
    return str(claims_of(tenant.owner_token)["sub"])


def test_members_are_listed_with_status_and_paged(stack: Stack) -> None:
    tenant = stack.create_tenant("list")
    for index in range(3):
        stack.add_member(tenant, f"page{index}-{uuid.uuid4().hex[:6]}@example.test", "viewer")
    seen: list[auth_pb2.Member] = []
    token = ""
    while True:
        reply = stack.members.ListMembers(
            members_service_pb2.ListMembersRequest(page_size=2, page_token=token), metadata=bearer(tenant.owner_token)
        )
        seen += list(reply.members)
        token = reply.next_page_token
        if not token:
            break
    assert len(seen) == 4 == len({member.user_id for member in seen})
    founder = seen[0]
    assert founder.email == tenant.owner_email and founder.role == "owner" and founder.joined_via == "tenant_creation"
    assert {member.status for member in seen} == {auth_pb2.MEMBERSHIP_STATUS_ACTIVE}


def test_the_last_owner_cannot_leave_but_one_of_two_can(stack: Stack) -> None:
    tenant = stack.create_tenant("owners")
    me = owner_id(tenant)
    for fields in ({"role": "admin"}, {"status": auth_pb2.MEMBERSHIP_STATUS_SUSPENDED}):
        error = rpc_error(lambda f=fields: update(stack, tenant.owner_token, me, **f))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    removal = rpc_error(
        lambda: stack.members.RemoveMember(
            members_service_pb2.RemoveMemberRequest(user_id=me), metadata=bearer(tenant.owner_token)
        )
    )
    assert removal.code() == grpc.StatusCode.FAILED_PRECONDITION
    second = stack.add_member(tenant, f"co-owner-{uuid.uuid4().hex[:6]}@example.test", "owner")
    assert update(stack, second.access_token, me, role="admin").role == "admin"


def test_two_owners_demoting_each_other_at_once_leave_one_owner(stack: Stack) -> None:
    tenant = stack.create_tenant("race")
    other = stack.add_member(tenant, f"rival-{uuid.uuid4().hex[:6]}@example.test", "owner")
    pairs = [(tenant.owner_token, claims_of(other.access_token)["sub"]), (other.access_token, owner_id(tenant))]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda pair: _try_demote(stack, *pair), pairs))
    assert sorted(outcomes) == ["FAILED_PRECONDITION", "OK"] or outcomes.count("UNAUTHENTICATED") == 1
    owners = stack.sql(
        "SELECT count(*) FROM auth.memberships WHERE tenant_id = %s AND role = 'owner' AND status = 'active'",
        (tenant.id,),
    )
    assert owners == [(1,)]


def _try_demote(stack: Stack, token: str, user_id: str) -> str:
    try:
        update(stack, token, user_id, role="admin")
        return "OK"
    except grpc.RpcError as error:
        return error.code().name  # type: ignore[no-any-return]


def test_a_pending_owner_invitation_counts_as_an_owner(stack: Stack) -> None:
    tenant = stack.create_tenant("pending")
    invitation = stack.invite(tenant.owner_token, f"heir-{uuid.uuid4().hex[:6]}@example.test", "owner")
    # With an open owner invitation, the sole owner may step down.
    assert update(stack, tenant.owner_token, owner_id(tenant), role="admin").role == "admin"
    # And now that invitation is the tenant's last way to an owner: it cannot be revoked.
    admin = stack.login(tenant.owner_email, OWNER_PASSWORD, tenant.slug).access_token
    error = rpc_error(
        lambda: stack.members.RevokeInvitation(
            members_service_pb2.RevokeInvitationRequest(invitation_id=invitation.id), metadata=bearer(admin)
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # only owners manage owner invitations


def test_bad_member_updates_name_the_field(stack: Stack) -> None:
    tenant = stack.create_tenant("badupd")
    target = claims_of(stack.add_member(tenant, f"t-{uuid.uuid4().hex[:6]}@example.test").access_token)["sub"]
    cases = [
        ({"user_id": "not-a-uuid", "role": "viewer"}, grpc.StatusCode.INVALID_ARGUMENT, "user_id:"),
        ({"user_id": target}, grpc.StatusCode.INVALID_ARGUMENT, "role:"),
        (
            {"user_id": target, "status": auth_pb2.MEMBERSHIP_STATUS_REMOVED},
            grpc.StatusCode.INVALID_ARGUMENT,
            "status:",
        ),
        ({"user_id": target, "role": "ghost"}, grpc.StatusCode.NOT_FOUND, "role:"),
        ({"user_id": str(uuid.uuid4()), "role": "viewer"}, grpc.StatusCode.NOT_FOUND, "user_id:"),
    ]
    for fields, code, prefix in cases:
        error = rpc_error(
            lambda f=fields: stack.members.UpdateMember(
                members_service_pb2.UpdateMemberRequest(**f),
                metadata=bearer(tenant.owner_token),  # type: ignore[arg-type]
            )
        )
        assert error.code() == code and error.details().startswith(prefix), fields


def test_login_without_a_slug_goes_to_the_default_then_the_last_used_tenant(stack: Stack) -> None:
    first = stack.create_tenant("home")
    email = f"multi-{uuid.uuid4().hex[:6]}@example.test"
    stack.add_member(first, email, "viewer")
    second = stack.create_tenant("away")
    stack.invite(second.owner_token, email, "admin")
    stack.accept(stack.invitation_token(email), password=MEMBER_PASSWORD)  # a login into `second`
    assert claims_of(stack.login(email, MEMBER_PASSWORD).access_token)["tid"] == second.id
    stack.login(email, MEMBER_PASSWORD, first.slug)
    assert claims_of(stack.login(email, MEMBER_PASSWORD).access_token)["tid"] == first.id
    token = stack.login(email, MEMBER_PASSWORD).access_token
    me = stack.auth.SetDefaultTenant(
        auth_service_pb2.SetDefaultTenantRequest(tenant_slug=second.slug), metadata=bearer(token)
    )
    assert [m.tenant_slug for m in me.memberships if m.is_default] == [second.slug]
    stack.login(email, MEMBER_PASSWORD, first.slug)  # using another tenant does not move the default
    assert claims_of(stack.login(email, MEMBER_PASSWORD).access_token)["tid"] == second.id
    # A suspended membership is passed over; naming it says why.
    user_id = claims_of(token)["sub"]
    update(stack, second.owner_token, user_id, status=auth_pb2.MEMBERSHIP_STATUS_SUSPENDED)
    assert claims_of(stack.login(email, MEMBER_PASSWORD).access_token)["tid"] == first.id
    refused = rpc_error(lambda: stack.login(email, MEMBER_PASSWORD, second.slug))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED and "suspended" in refused.details()


def test_switching_tenant_needs_no_password_and_keeps_the_old_session(stack: Stack) -> None:
    first, second = stack.create_tenant("sw1"), stack.create_tenant("sw2")
    email = f"switch-{uuid.uuid4().hex[:6]}@example.test"
    stack.add_member(first, email, "admin")
    stack.invite(second.owner_token, email, "viewer")
    stack.accept(stack.invitation_token(email), password=MEMBER_PASSWORD)
    old = stack.login(email, MEMBER_PASSWORD, first.slug).access_token
    switched = stack.auth.SwitchTenant(
        auth_service_pb2.SwitchTenantRequest(tenant_slug=second.slug), metadata=bearer(old)
    )
    claims = claims_of(switched.access_token)
    assert claims["tid"] == second.id and claims["roles"] == ["viewer"] and claims["sid"] != claims_of(old)["sid"]
    assert stack.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(old)).current_tenant_id == first.id
    me = stack.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(switched.access_token))
    assert me.current_tenant_id == second.id
    assert {(m.tenant_slug, m.role) for m in me.memberships} == {(first.slug, "admin"), (second.slug, "viewer")}
    for slug in (stack.create_tenant("sw3").slug, "no-such-tenant", ""):
        error = rpc_error(
            lambda s=slug: stack.auth.SwitchTenant(
                auth_service_pb2.SwitchTenantRequest(tenant_slug=s), metadata=bearer(old)
            )
        )
        assert error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT), slug


def test_me_lists_removed_and_suspended_memberships(stack: Stack) -> None:
    first, second = stack.create_tenant("me1"), stack.create_tenant("me2")
    email = f"me-{uuid.uuid4().hex[:6]}@example.test"
    tokens = stack.add_member(first, email, "viewer")
    stack.invite(second.owner_token, email, "viewer")
    stack.accept(stack.invitation_token(email), password=MEMBER_PASSWORD)
    user_id = claims_of(tokens.access_token)["sub"]
    stack.members.RemoveMember(
        members_service_pb2.RemoveMemberRequest(user_id=user_id), metadata=bearer(second.owner_token)
    )
    token = stack.login(email, MEMBER_PASSWORD).access_token
    assert claims_of(token)["tid"] == first.id
    me = stack.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(token))
    statuses = {m.tenant_slug: m.status for m in me.memberships}
    assert statuses == {first.slug: auth_pb2.MEMBERSHIP_STATUS_ACTIVE, second.slug: auth_pb2.MEMBERSHIP_STATUS_REMOVED}
    refused = rpc_error(lambda: stack.login(email, MEMBER_PASSWORD, second.slug))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED and "removed" in refused.details()


def test_a_verified_person_sees_invitations_waiting_for_them(stack: Stack) -> None:
    home, inviting = stack.create_tenant("vhome"), stack.create_tenant("vinv")
    email = f"wanted-{uuid.uuid4().hex[:6]}@example.test"
    stack.add_member(home, email, "viewer")  # accepting made the email verified
    stack.invite(inviting.owner_token, email, "admin")
    token = stack.login(email, MEMBER_PASSWORD).access_token
    me = stack.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(token))
    assert {(m.tenant_slug, m.role, m.status) for m in me.memberships} == {
        (home.slug, "viewer", auth_pb2.MEMBERSHIP_STATUS_ACTIVE),
        (inviting.slug, "admin", auth_pb2.MEMBERSHIP_STATUS_INVITED),
    }
    refused = rpc_error(lambda: stack.login(email, MEMBER_PASSWORD, inviting.slug))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED and "not been accepted" in refused.details()
    # The invitations of other people stay invisible.
    other = stack.create_tenant("vother")
    stack.invite(other.owner_token, f"someone-else-{uuid.uuid4().hex[:6]}@example.test", "admin")
    again = stack.auth.GetMe(auth_service_pb2.GetMeRequest(), metadata=bearer(token))
    assert other.slug not in {m.tenant_slug for m in again.memberships}
