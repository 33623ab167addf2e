"""Domain values to the contracts' messages and back, for the auth servicers."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from tenantry.auth.v1 import auth_pb2, auth_service_pb2

from kit.convert import parse_uuid, timestamp
from services.auth.models import Invitation
from services.auth.repository.memberships import MembershipView, MemberView
from services.auth.service.accounts import Account
from services.auth.service.invitations import invitation_status
from services.auth.service.roles import RoleView
from services.auth.service.sessions import IssuedTokens

MEMBERSHIP_STATUSES = {
    "invited": auth_pb2.MEMBERSHIP_STATUS_INVITED,
    "active": auth_pb2.MEMBERSHIP_STATUS_ACTIVE,
    "suspended": auth_pb2.MEMBERSHIP_STATUS_SUSPENDED,
    "removed": auth_pb2.MEMBERSHIP_STATUS_REMOVED,
}
MEMBERSHIP_STATUS_NAMES = {value: name for name, value in MEMBERSHIP_STATUSES.items()}
INVITATION_STATUSES = {
    "pending": auth_pb2.INVITATION_STATUS_PENDING,
    "accepted": auth_pb2.INVITATION_STATUS_ACCEPTED,
    "revoked": auth_pb2.INVITATION_STATUS_REVOKED,
    "expired": auth_pb2.INVITATION_STATUS_EXPIRED,
}


def required_uuid(field: str, value: str) -> UUID:
    parsed = parse_uuid(field, value)
    assert parsed is not None
    return parsed


def token_response(tokens: IssuedTokens) -> auth_service_pb2.TokenResponse:
    return auth_service_pb2.TokenResponse(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_type="Bearer",
        expires_in=tokens.expires_in,
    )


def member_message(member: MemberView) -> auth_pb2.Member:
    message = auth_pb2.Member(
        user_id=str(member.user_id),
        email=member.email,
        full_name=member.full_name,
        role=member.role,
        status=MEMBERSHIP_STATUSES[member.status],
        joined_via=member.joined_via,
        invited_by=str(member.invited_by) if member.invited_by else "",
        created_at=timestamp(member.created_at),
    )
    if member.last_login_at is not None:
        message.last_login_at.CopyFrom(timestamp(member.last_login_at))
    return message


def invitation_message(invitation: Invitation) -> auth_pb2.Invitation:
    message = auth_pb2.Invitation(
        id=str(invitation.id),
        email=invitation.email,
        role=invitation.role,
        status=INVITATION_STATUSES[invitation_status(invitation, datetime.now(UTC))],
        invited_by=str(invitation.invited_by) if invitation.invited_by else "",
        created_at=timestamp(invitation.created_at),
        expires_at=timestamp(invitation.expires_at),
    )
    if invitation.accepted_at is not None:
        message.accepted_at.CopyFrom(timestamp(invitation.accepted_at))
    return message


def role_message(role: RoleView) -> auth_pb2.Role:
    message = auth_pb2.Role(
        name=role.name, description=role.description, permissions=list(role.permissions), built_in=role.built_in
    )
    if role.created_at is not None:
        message.created_at.CopyFrom(timestamp(role.created_at))
    if role.updated_at is not None:
        message.updated_at.CopyFrom(timestamp(role.updated_at))
    return message


def my_membership_message(membership: MembershipView, default_tenant_id: UUID | None) -> auth_pb2.MyMembership:
    return auth_pb2.MyMembership(
        tenant_id=str(membership.tenant_id),
        tenant_slug=membership.slug,
        role=membership.role,
        status=MEMBERSHIP_STATUSES[membership.status],
        is_default=membership.tenant_id == default_tenant_id,
    )


def me_message(account: Account, current_tenant_id: UUID | None, permissions: frozenset[str]) -> auth_service_pb2.Me:
    user = account.user
    return auth_service_pb2.Me(
        user_id=str(user.id),
        email=user.email,
        full_name=user.full_name,
        email_verified=user.email_verified_at is not None,
        current_tenant_id=str(current_tenant_id) if current_tenant_id else "",
        platform_operator=user.is_platform_admin,
        memberships=[
            *(my_membership_message(m, user.default_tenant_id) for m in account.memberships),
            *(
                auth_pb2.MyMembership(
                    tenant_id=str(tenant_id), tenant_slug=slug, role=role, status=auth_pb2.MEMBERSHIP_STATUS_INVITED
                )
                for tenant_id, slug, role in account.invitations
            ),
        ],
        permissions=sorted(permissions),
    )
