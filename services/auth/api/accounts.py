"""The account servicer: proto <-> domain, one thin method per RPC."""

from __future__ import annotations

import grpc
from tenantry.auth.v1 import accounts_service_pb2, accounts_service_pb2_grpc

from kit.context import require_principal
from kit.convert import timestamp
from kit.db import Database
from services.auth.api.messages import required_uuid
from services.auth.repository.sessions import SessionView
from services.auth.service.accounts import AccountService
from services.auth.service.password_reset import PasswordReset
from services.auth.service.registration import Registration
from services.auth.service.verification import EmailVerification


def session_message(view: SessionView, current: bool) -> accounts_service_pb2.Session:
    message = accounts_service_pb2.Session(
        id=str(view.id),
        tenant_id=str(view.tenant_id) if view.tenant_id else "",
        tenant_slug=view.tenant_slug or "",
        created_at=timestamp(view.created_at),
        ip_address=view.ip_address or "",
        user_agent=view.user_agent or "",
        current=current,
    )
    if view.last_used_at is not None:
        message.last_used_at.CopyFrom(timestamp(view.last_used_at))
    return message


class AccountApi(accounts_service_pb2_grpc.AccountServiceServicer):
    def __init__(
        self,
        database: Database,
        accounts: AccountService,
        registration: Registration,
        verification: EmailVerification,
        passwords: PasswordReset,
    ) -> None:
        self._database = database
        self._accounts = accounts
        self._registration = registration
        self._verification = verification
        self._passwords = passwords

    async def Register(
        self, request: accounts_service_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> accounts_service_pb2.RegisterResponse:
        await self._registration.register(
            self._database,
            tenant_slug=request.tenant_slug,
            email=request.email,
            full_name=request.full_name,
            password=request.password,
            preferred_language=request.preferred_language,
        )
        return accounts_service_pb2.RegisterResponse()

    async def VerifyEmail(
        self, request: accounts_service_pb2.VerifyEmailRequest, context: grpc.aio.ServicerContext
    ) -> accounts_service_pb2.VerifyEmailResponse:
        await self._verification.verify(self._database, token=request.token)
        return accounts_service_pb2.VerifyEmailResponse()

    async def ResendVerificationEmail(
        self, request: accounts_service_pb2.ResendVerificationEmailRequest, context: grpc.aio.ServicerContext
    ) -> accounts_service_pb2.ResendVerificationEmailResponse:
        await self._verification.resend(self._database, require_principal())
        return accounts_service_pb2.ResendVerificationEmailResponse()

    async def ForgotPassword(
        self, request: accounts_service_pb2.ForgotPasswordRequest, context: grpc.aio.ServicerContext
    ) -> accounts_service_pb2.ForgotPasswordResponse:
        await self._passwords.forgot(self._database, email=request.email)
        return accounts_service_pb2.ForgotPasswordResponse()

    async def ResetPassword(
        self, request: accounts_service_pb2.ResetPasswordRequest, context: grpc.aio.ServicerContext
    ) -> accounts_service_pb2.ResetPasswordResponse:
        await self._passwords.reset(self._database, token=request.token, new_password=request.new_password)
        return accounts_service_pb2.ResetPasswordResponse()

    async def ChangePassword(
        self, request: accounts_service_pb2.ChangePasswordRequest, context: grpc.aio.ServicerContext
    ) -> accounts_service_pb2.ChangePasswordResponse:
        revoked = await self._passwords.change(
            self._database,
            require_principal(),
            current_password=request.current_password,
            new_password=request.new_password,
        )
        return accounts_service_pb2.ChangePasswordResponse(sessions_revoked=revoked)

    async def ListMySessions(
        self, request: accounts_service_pb2.ListMySessionsRequest, context: grpc.aio.ServicerContext
    ) -> accounts_service_pb2.ListMySessionsResponse:
        principal = require_principal()
        async with self._database.unit_of_work() as session:
            views = await self._accounts.list_sessions(session, principal)
        return accounts_service_pb2.ListMySessionsResponse(
            sessions=[session_message(view, view.id == principal.session_id) for view in views]
        )

    async def RevokeMySession(
        self, request: accounts_service_pb2.RevokeMySessionRequest, context: grpc.aio.ServicerContext
    ) -> accounts_service_pb2.RevokeMySessionResponse:
        session_id = required_uuid("session_id", request.session_id)
        async with self._database.unit_of_work() as session:
            await self._accounts.revoke_session(session, require_principal(), session_id=session_id)
        return accounts_service_pb2.RevokeMySessionResponse()

    async def RevokeOtherSessions(
        self, request: accounts_service_pb2.RevokeOtherSessionsRequest, context: grpc.aio.ServicerContext
    ) -> accounts_service_pb2.RevokeOtherSessionsResponse:
        async with self._database.unit_of_work() as session:
            revoked = await self._accounts.revoke_other_sessions(session, require_principal())
        return accounts_service_pb2.RevokeOtherSessionsResponse(sessions_revoked=revoked)
