"""The auth servicers: proto <-> domain, one thin method per RPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from tenantry.auth.v1 import auth_pb2, auth_service_pb2, auth_service_pb2_grpc

from kit.context import Principal, current_principal, require_principal
from kit.convert import BuiltFrom, timestamp
from kit.db import Database
from kit.errors import DomainError, InvalidArgument
from kit.revocations import RevokedSessions, revocation_events
from kit.tokens import VERIFIED_TOKENS_REMEMBERED, AccessTokenVerifier
from services.auth.api.messages import MEMBERSHIP_STATUSES, me_message, required_uuid, token_response
from services.auth.service.accounts import AccountService
from services.auth.service.invitations import InvitationService
from services.auth.service.memberships import MembershipService
from services.auth.service.sessions import SessionService
from services.auth.service.signing_keys import SigningKeys


class AuthApi(auth_service_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        database: Database,
        sessions: SessionService,
        accounts: AccountService,
        invitations: InvitationService,
        keys: SigningKeys,
    ) -> None:
        self._database = database
        self._sessions = sessions
        self._accounts = accounts
        self._invitations = invitations
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
        tokens = await self._sessions.refresh(self._database, refresh_token=request.refresh_token)
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

    async def GetMe(
        self, request: auth_service_pb2.GetMeRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.Me:
        principal = require_principal()
        async with self._database.unit_of_work() as session:
            account = await self._accounts.me(session, principal)
        return me_message(account, principal.tenant_id, principal.permissions)

    async def SwitchTenant(
        self, request: auth_service_pb2.SwitchTenantRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.TokenResponse:
        async with self._database.unit_of_work() as session:
            tokens = await self._sessions.switch_tenant(session, require_principal(), tenant_slug=request.tenant_slug)
        return token_response(tokens)

    async def SetDefaultTenant(
        self, request: auth_service_pb2.SetDefaultTenantRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.Me:
        principal = require_principal()
        async with self._database.unit_of_work() as session:
            account = await self._accounts.set_default_tenant(session, principal, tenant_slug=request.tenant_slug)
        return me_message(account, principal.tenant_id, principal.permissions)

    async def AcceptInvitation(
        self, request: auth_service_pb2.AcceptInvitationRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.AcceptInvitationResponse:
        acceptance = await self._invitations.accept(
            self._database,
            current_principal(),
            token=request.token,
            full_name=request.full_name,
            password=request.password,
        )
        return auth_service_pb2.AcceptInvitationResponse(
            tenant_id=str(acceptance.tenant_id),
            tenant_slug=acceptance.tenant_slug,
            role=acceptance.role,
            tokens=token_response(acceptance.tokens),
        )


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
        # Answers for active tokens, by token: see IntrospectToken.
        self._answers = BuiltFrom(_introspection, limit=VERIFIED_TOKENS_REMEMBERED)

    async def IntrospectToken(
        self, request: auth_service_pb2.IntrospectTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.IntrospectTokenResponse:
        try:
            principal = await self._verifier.verify(request.token)
        except DomainError:
            return auth_service_pb2.IntrospectTokenResponse(active=False)
        # verify() checked expiry, the key and revocation just now; the answer built for
        # this very principal (the verifier's remembered one) is the same message again.
        return self._answers.message(request.token, principal)

    async def ProvisionTenantOwner(
        self, request: auth_service_pb2.ProvisionTenantOwnerRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.ProvisionTenantOwnerResponse:
        tenant_id = required_uuid("tenant_id", request.tenant_id)
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
            user_id=str(owner.user_id) if owner.user_id else "",
            user_created=owner.user_created,
            owner_status=MEMBERSHIP_STATUSES[owner.status],
        )

    async def SetTenantAccountSettings(
        self, request: auth_service_pb2.SetTenantAccountSettingsRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.SetTenantAccountSettingsResponse:
        tenant_id = required_uuid("tenant_id", request.tenant_id)
        async with self._database.unit_of_work(scope="") as session:
            await self._memberships.set_tenant_account_settings(
                session,
                tenant_id=tenant_id,
                registration_enabled=request.registration_enabled,
                default_role=request.default_role,
                email_sender_name=request.email_sender_name,
                email_product_name=request.email_product_name,
            )
        return auth_service_pb2.SetTenantAccountSettingsResponse()

    async def SetTenantStatus(
        self, request: auth_service_pb2.SetTenantStatusRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.SetTenantStatusResponse:
        tenant_id = required_uuid("tenant_id", request.tenant_id)
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


def _introspection(principal: Principal) -> auth_service_pb2.IntrospectTokenResponse:
    return auth_service_pb2.IntrospectTokenResponse(
        active=True,
        sub=str(principal.user_id),
        tid=str(principal.tenant_id) if principal.tenant_id else "",
        roles=sorted(principal.roles),
        sid=str(principal.session_id),
        jti=principal.token_id,
        expires_at=timestamp(principal.expires_at),
        permissions=sorted(principal.permissions),
    )
