"""The member and invitation servicer: proto <-> domain, one thin method per RPC."""

from __future__ import annotations

import grpc
from tenantry.auth.v1 import auth_pb2, members_service_pb2, members_service_pb2_grpc

from kit.context import require_principal
from kit.db import Database
from kit.errors import InvalidArgument
from kit.pagination import decode_cursor, page_size
from services.auth.api.messages import MEMBERSHIP_STATUS_NAMES, invitation_message, member_message, required_uuid
from services.auth.service.invitations import InvitationService
from services.auth.service.memberships import MembershipService


class MemberApi(members_service_pb2_grpc.MemberServiceServicer):
    def __init__(self, database: Database, members: MembershipService, invitations: InvitationService) -> None:
        self._database = database
        self._members = members
        self._invitations = invitations

    async def ListMembers(
        self, request: members_service_pb2.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> members_service_pb2.ListMembersResponse:
        size = page_size(request.page_size)
        after = decode_cursor(request.page_token)
        async with self._database.unit_of_work() as session:
            page = await self._members.list_members(session, require_principal(), after=after, page_size=size)
        return members_service_pb2.ListMembersResponse(
            members=[member_message(member) for member in page.members], next_page_token=page.next_page_token
        )

    async def UpdateMember(
        self, request: members_service_pb2.UpdateMemberRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.Member:
        user_id = required_uuid("user_id", request.user_id)
        status = None
        if request.HasField("status"):
            status = MEMBERSHIP_STATUS_NAMES.get(request.status)
            if status is None:
                raise InvalidArgument("status", "must be MEMBERSHIP_STATUS_ACTIVE or MEMBERSHIP_STATUS_SUSPENDED")
        role = request.role if request.HasField("role") else None
        async with self._database.unit_of_work() as session:
            member = await self._members.update_member(
                session, require_principal(), user_id=user_id, role=role, status=status
            )
        return member_message(member)

    async def RemoveMember(
        self, request: members_service_pb2.RemoveMemberRequest, context: grpc.aio.ServicerContext
    ) -> members_service_pb2.RemoveMemberResponse:
        user_id = required_uuid("user_id", request.user_id)
        async with self._database.unit_of_work() as session:
            await self._members.remove_member(session, require_principal(), user_id=user_id)
        return members_service_pb2.RemoveMemberResponse()

    async def RevokeMemberSessions(
        self, request: members_service_pb2.RevokeMemberSessionsRequest, context: grpc.aio.ServicerContext
    ) -> members_service_pb2.RevokeMemberSessionsResponse:
        user_id = required_uuid("user_id", request.user_id)
        async with self._database.unit_of_work() as session:
            revoked = await self._members.revoke_member_sessions(session, require_principal(), user_id=user_id)
        return members_service_pb2.RevokeMemberSessionsResponse(sessions_revoked=revoked)

    async def CreateInvitation(
        self, request: members_service_pb2.CreateInvitationRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.Invitation:
        async with self._database.unit_of_work() as session:
            invitation = await self._invitations.create(
                session, require_principal(), email=request.email, role=request.role
            )
        return invitation_message(invitation)

    async def ListInvitations(
        self, request: members_service_pb2.ListInvitationsRequest, context: grpc.aio.ServicerContext
    ) -> members_service_pb2.ListInvitationsResponse:
        size = page_size(request.page_size)
        before = decode_cursor(request.page_token)
        async with self._database.unit_of_work() as session:
            page = await self._invitations.list_invitations(session, require_principal(), before=before, page_size=size)
        return members_service_pb2.ListInvitationsResponse(
            invitations=[invitation_message(item) for item in page.invitations], next_page_token=page.next_page_token
        )

    async def RevokeInvitation(
        self, request: members_service_pb2.RevokeInvitationRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.Invitation:
        invitation_id = required_uuid("invitation_id", request.invitation_id)
        async with self._database.unit_of_work() as session:
            invitation = await self._invitations.revoke(session, require_principal(), invitation_id=invitation_id)
        return invitation_message(invitation)

    async def ResendInvitation(
        self, request: members_service_pb2.ResendInvitationRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.Invitation:
        invitation_id = required_uuid("invitation_id", request.invitation_id)
        async with self._database.unit_of_work() as session:
            invitation = await self._invitations.resend(session, require_principal(), invitation_id=invitation_id)
        return invitation_message(invitation)
