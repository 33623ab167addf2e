"""The auth servicers: proto <-> domain, one thin method per RPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from tenantry.auth.v1 import auth_pb2, auth_service_pb2, auth_service_pb2_grpc

from kit.context import require_principal
from kit.convert import parse_uuid, timestamp
from kit.db import Database
from kit.errors import DomainError, InvalidArgument
from kit.pagination import decode_cursor, page_size
from kit.revocations import RevokedSessions, revocation_events
from kit.tokens import AccessTokenVerifier
from services.auth.repository import MemberView
from services.auth.service.memberships import MembershipService
from services.auth.service.sessions import IssuedTokens, SessionService
from services.auth.service.signing_keys import SigningKeys

ROLE_NAMES = {auth_pb2.ROLE_OWNER: "owner", auth_pb2.ROLE_ADMIN: "admin", auth_pb2.ROLE_VIEWER: "viewer"}
ROLE_VALUES = {name: value for value, name in ROLE_NAMES.items()}


def token_response(tokens: IssuedTokens) -> auth_service_pb2.TokenResponse:
    return auth_service_pb2.TokenResponse(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_type="Bearer",
        expires_in=tokens.expires_in,
    )


def member_message(member: MemberView) -> auth_pb2.TenantAdmin:
    return auth_pb2.TenantAdmin(
        user_id=str(member.user_id),
        email=member.email,
        full_name=member.full_name,
        role=ROLE_VALUES[member.role],  # type: ignore[arg-type]
        created_at=timestamp(member.created_at),
    )


class AuthApi(auth_service_pb2_grpc.AuthServiceServicer):
    def __init__(
        self, database: Database, sessions: SessionService, memberships: MembershipService, keys: SigningKeys
    ) -> None:
        self._database = database
        self._sessions = sessions
        self._memberships = memberships
        self._keys = keys

    async def Login(
        self, request: auth_service_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.TokenResponse:
        tokens = await self._sessions.login(
            self._database, email=request.email, password=request.password, tenant_slug=request.tenant_slug
        )
        return token_response(tokens)

    async def Refresh(
        self, request: auth_service_pb2.RefreshRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.TokenResponse:
        async with self._database.unit_of_work() as session:
            tokens = await self._sessions.refresh(session, refresh_token=request.refresh_token)
        return token_response(tokens)

    async def Logout(
        self, request: auth_service_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.LogoutResponse:
        async with self._database.unit_of_work() as session:
            await self._sessions.logout(session, require_principal())
        return auth_service_pb2.LogoutResponse()

    async def GetJwks(
        self, request: auth_service_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.Jwks:
        return auth_service_pb2.Jwks(keys=[auth_pb2.Jwk(**jwk) for jwk in self._keys.jwks()])

    async def ListTenantAdmins(
        self, request: auth_service_pb2.ListTenantAdminsRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.ListTenantAdminsResponse:
        size = page_size(request.page_size)
        after = decode_cursor(request.page_token)
        async with self._database.unit_of_work() as session:
            page = await self._memberships.list_members(session, require_principal(), after=after, page_size=size)
        return auth_service_pb2.ListTenantAdminsResponse(
            admins=[member_message(member) for member in page.members], next_page_token=page.next_page_token
        )

    async def AddTenantAdmin(
        self, request: auth_service_pb2.AddTenantAdminRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.TenantAdmin:
        if request.role not in ROLE_NAMES:
            raise InvalidArgument("role", "must be ROLE_OWNER, ROLE_ADMIN or ROLE_VIEWER")
        member = await self._memberships.add_member(
            self._database,
            require_principal(),
            email=request.email,
            full_name=request.full_name,
            role=ROLE_NAMES[request.role],
            password=request.password,
        )
        return member_message(member)


class AuthInternalApi(auth_service_pb2_grpc.AuthInternalServiceServicer):
    def __init__(
        self,
        database: Database,
        memberships: MembershipService,
        verifier: AccessTokenVerifier,
        revoked: RevokedSessions,
    ) -> None:
        self._database = database
        self._memberships = memberships
        self._verifier = verifier
        self._revoked = revoked

    async def IntrospectToken(
        self, request: auth_service_pb2.IntrospectTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.IntrospectTokenResponse:
        try:
            principal = await self._verifier.verify(request.token)
        except DomainError:
            return auth_service_pb2.IntrospectTokenResponse(active=False)
        return auth_service_pb2.IntrospectTokenResponse(
            active=True,
            sub=str(principal.user_id),
            tid=str(principal.tenant_id) if principal.tenant_id else "",
            roles=sorted(principal.roles),
            sid=str(principal.session_id),
            jti=principal.token_id,
            expires_at=timestamp(principal.expires_at),
        )

    async def ProvisionTenantOwner(
        self, request: auth_service_pb2.ProvisionTenantOwnerRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.ProvisionTenantOwnerResponse:
        tenant_id = parse_uuid("tenant_id", request.tenant_id)
        assert tenant_id is not None
        if not request.tenant_slug:
            raise InvalidArgument("tenant_slug", "is required")
        owner = await self._memberships.provision_owner(
            self._database,
            tenant_id=tenant_id,
            slug=request.tenant_slug,
            email=request.email,
            full_name=request.full_name,
            password=request.password,
        )
        return auth_service_pb2.ProvisionTenantOwnerResponse(
            user_id=str(owner.user_id), user_created=owner.user_created
        )

    async def SetTenantStatus(
        self, request: auth_service_pb2.SetTenantStatusRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.SetTenantStatusResponse:
        tenant_id = parse_uuid("tenant_id", request.tenant_id)
        assert tenant_id is not None
        async with self._database.unit_of_work(scope="") as session:
            revoked = await self._memberships.set_tenant_status(
                session, tenant_id=tenant_id, is_active=request.is_active
            )
        return auth_service_pb2.SetTenantStatusResponse(sessions_revoked=revoked)

    async def WatchRevocations(
        self, request: auth_service_pb2.WatchRevocationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[auth_service_pb2.WatchRevocationsResponse]:
        async for event in revocation_events(self._revoked):
            yield event
